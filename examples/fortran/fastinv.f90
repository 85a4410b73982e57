! Fortran bindings (iso_c_binding) for the part of the fastinv C API (fastinv/fastinv.h) that
! DeepEM needs. The derived types mirror the C structs field for field; keep them in step
! with the header (the API level is checked at run time by fastinv_check_api).
module fastinv
  use, intrinsic :: iso_c_binding
  implicit none

  integer(c_int), parameter :: FASTINV_API_VERSION = 1
  integer(c_int), parameter :: FASTINV_OK = 0
  integer(c_int), parameter :: FASTINV_FLOAT32 = 0, FASTINV_FLOAT64 = 1

  type, bind(c) :: fastinv_aia_data
    type(c_ptr) :: data = c_null_ptr
    integer(c_int) :: dtype = FASTINV_FLOAT64
    integer(c_int64_t) :: npix = 0
    integer(c_int64_t) :: stride_channel = 0, stride_pixel = 0
  end type

  type, bind(c) :: fastinv_deepem_output
    integer(c_size_t) :: size = 0
    type(c_ptr) :: em = c_null_ptr, model = c_null_ptr, status = c_null_ptr
    type(c_ptr) :: chi2 = c_null_ptr, total_em = c_null_ptr
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
