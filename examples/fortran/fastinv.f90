! Fortran bindings (iso_c_binding) for the part of the fastinv C API (fastinv/fastinv.h) that
! DeepEM needs, with its refinement, error bars and load options (API level 3). The derived types mirror the C structs field for field; keep them in step
! with the header (the API level is checked at run time by fastinv_check_api).
module fastinv
  use, intrinsic :: iso_c_binding
  implicit none

  integer(c_int), parameter :: FASTINV_API_VERSION = 3
  integer(c_int), parameter :: FASTINV_OK = 0, FASTINV_UNSUPPORTED = 7
  integer(c_int), parameter :: FASTINV_FLOAT32 = 0, FASTINV_FLOAT64 = 1
  integer(c_int32_t), parameter :: FASTINV_ERRORS_NONE = 0, FASTINV_ERRORS_SIGMA = 1, FASTINV_ERRORS_AIA = 2

  type, bind(c) :: fastinv_aia_data
    type(c_ptr) :: data = c_null_ptr
    integer(c_int) :: dtype = FASTINV_FLOAT64
    integer(c_int64_t) :: npix = 0
    integer(c_int64_t) :: stride_channel = 0, stride_pixel = 0
  end type

  type, bind(c) :: fastinv_dem_errors
    integer(c_size_t) :: size = 0
    integer(c_int32_t) :: mode = FASTINV_ERRORS_NONE
    type(c_ptr) :: sigma = c_null_ptr
    integer(c_int64_t) :: sigma_stride_channel = 0, sigma_stride_pixel = 0
    real(c_double) :: exptime(6) = 0
    real(c_double) :: n_sample = 1
  end type

  type, bind(c) :: fastinv_deepem_output
    integer(c_size_t) :: size = 0
    type(c_ptr) :: em = c_null_ptr, model = c_null_ptr, status = c_null_ptr
    type(c_ptr) :: chi2 = c_null_ptr, total_em = c_null_ptr
    ! API level 3: refinement (needs errors) and 1-sigma errors (all three or none)
    integer(c_int32_t) :: refine = 0
    type(c_ptr) :: tolfac = c_null_ptr, iterations = c_null_ptr
    type(c_ptr) :: em_err = c_null_ptr, logt_err = c_null_ptr, total_em_err = c_null_ptr
  end type

  ! API level 3: device and precision (C strings, e.g. "bf16" // c_null_char, or c_null_ptr)
  type, bind(c) :: fastinv_load_options
    integer(c_size_t) :: size = 0
    type(c_ptr) :: device = c_null_ptr, precision = c_null_ptr
  end type

  interface
    integer(c_int) function fastinv_check_api(header_api_version) bind(c, name="fastinv_check_api")
      import :: c_int
      integer(c_int), value :: header_api_version
    end function

    type(c_ptr) function fastinv_last_error_c() bind(c, name="fastinv_last_error")
      import :: c_ptr
    end function

    integer(c_int) function fastinv_deepem_load(path, deepem) bind(c, name="fastinv_deepem_load")
      import :: c_int, c_ptr
      type(c_ptr), value :: path
      type(c_ptr), intent(out) :: deepem
    end function

    integer(c_int) function fastinv_deepem_load_with(path, options, deepem) bind(c, name="fastinv_deepem_load_with")
      import :: c_int, c_ptr, fastinv_load_options
      type(c_ptr), value :: path
      type(fastinv_load_options), intent(in) :: options
      type(c_ptr), intent(out) :: deepem
    end function

    integer(c_int) function fastinv_bf16_available() bind(c, name="fastinv_bf16_available")
      import :: c_int
    end function

    subroutine fastinv_deepem_destroy(deepem) bind(c, name="fastinv_deepem_destroy")
      import :: c_ptr
      type(c_ptr), value :: deepem
    end subroutine

    integer(c_int) function fastinv_deepem_bins(deepem, n_bins, logt) bind(c, name="fastinv_deepem_bins")
      import :: c_int, c_int32_t, c_ptr
      type(c_ptr), value :: deepem
      integer(c_int32_t), intent(out) :: n_bins
      type(c_ptr), value :: logt
    end function

    ! errors: c_loc of a fastinv_dem_errors (target), or c_null_ptr
    integer(c_int) function fastinv_deepem_invert(deepem, y, errors, output, threads) &
        bind(c, name="fastinv_deepem_invert")
      import :: c_int, c_ptr, fastinv_aia_data, fastinv_deepem_output
      type(c_ptr), value :: deepem
      type(fastinv_aia_data), intent(in) :: y
      type(c_ptr), value :: errors
      type(fastinv_deepem_output), intent(in) :: output
      integer(c_int), value :: threads
    end function

    integer(c_size_t) function c_strlen(s) bind(c, name="strlen")
      import :: c_size_t, c_ptr
      type(c_ptr), value :: s
    end function
  end interface

contains

  ! The last error message of this thread as a Fortran string.
  function fastinv_last_error() result(msg)
    character(len=:), allocatable :: msg
    type(c_ptr) :: p
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    p = fastinv_last_error_c()
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: msg)
    do i = 1, n
      msg(i:i) = chars(i)
    end do
  end function

end module fastinv
