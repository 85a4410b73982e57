! DeepEM from Fortran through the C API: the same program as examples/c/deepem_total_em.c,
! and with EXPTIME (s, all channels) refined to fit the data under the AIA error model, with
! the 1-sigma errors (API level 3; pixels that are not ok then have NaN products).
!
!   deepem_total_em IMAGE NPIX [TOTAL_EM_OUT [EXPTIME]]
!
! IMAGE: raw float64, (6, NPIX) in C order = image(NPIX, 6) in Fortran order: element
! (channel c, pixel p) at offset c*NPIX + p, which is what the strides below say.
program deepem_total_em
  use, intrinsic :: iso_c_binding
  use fastinv
  implicit none
  integer(c_int64_t) :: npix
  integer(c_int32_t) :: n_bins
  integer :: status, u, p
  character(len=4096) :: path, arg
  real(c_double), allocatable, target :: image(:, :), total(:)
  real(c_float), allocatable, target :: em(:, :), model(:, :), total_em(:)
  integer(c_int8_t), allocatable, target :: flags(:)
  real(c_double), allocatable, target :: chi2(:)
  real(c_float), allocatable, target :: em_err(:, :), logt_err(:), total_em_err(:)
  type(c_ptr) :: deepem
  type(fastinv_aia_data) :: y
  type(fastinv_deepem_output) :: out
  type(fastinv_load_options) :: options
  type(fastinv_dem_errors), target :: errors
  logical :: refine

  if (command_argument_count() < 2) stop "usage: deepem_total_em IMAGE NPIX [TOTAL_EM_OUT [EXPTIME]]"
  call get_command_argument(1, path)
  call get_command_argument(2, arg)
  read (arg, *) npix
  if (fastinv_check_api(FASTINV_API_VERSION) /= FASTINV_OK) then
    print '(a)', fastinv_last_error()
    stop 1
  end if

  allocate(image(npix, 6), total(npix))
  open (newunit=u, file=trim(path), access="stream", form="unformatted", status="old")
  read (u) image
  close (u)

  options%size = c_sizeof(options)  ! device and precision NULL: CPU, fp32
  status = fastinv_deepem_load_with(c_null_ptr, options, deepem)  ! the default shipped model
  if (status /= FASTINV_OK) then
    print '(a)', fastinv_last_error()
    stop 1
  end if
  status = fastinv_deepem_bins(deepem, n_bins, c_null_ptr)
  allocate(em(npix, n_bins), model(npix, 6), flags(npix), chi2(npix), total_em(npix))

  y%data = c_loc(image)
  y%dtype = FASTINV_FLOAT64
  y%npix = npix
  y%stride_channel = npix
  y%stride_pixel = 1
  out%size = c_sizeof(out)
  out%em = c_loc(em)
  out%model = c_loc(model)
  out%status = c_loc(flags)
  out%chi2 = c_loc(chi2)
  out%total_em = c_loc(total_em)
  refine = command_argument_count() > 3
  errors%size = c_sizeof(errors)
  if (refine) then
    call get_command_argument(4, arg)
    errors%mode = FASTINV_ERRORS_AIA
    read (arg, *) errors%exptime(1)
    errors%exptime = errors%exptime(1)
    allocate(em_err(npix, n_bins), logt_err(npix), total_em_err(npix))
    out%refine = 1
    out%em_err = c_loc(em_err)
    out%logt_err = c_loc(logt_err)
    out%total_em_err = c_loc(total_em_err)
  end if
  status = fastinv_deepem_invert(deepem, y, c_loc(errors), out, 0_c_int)
  if (status /= FASTINV_OK) then
    print '(a)', fastinv_last_error()
    stop 1
  end if

  do p = 1, int(npix)
    total(p) = real(sum_bins(em(p, :)), c_double)
  end do
  print '(a,i0,a,i0,a,es14.6,a)', "Fortran DeepEM: ", npix, " pixels, ", count(flags == 0), &
    " ok, total EM summed ", sum(total, mask=flags == 0), " cm^-5"
  if (refine) print '(a,f8.4,a)', "refined; mean log T error ", sum(logt_err, mask=flags == 0) / count(flags == 0), &
    " dex"
  if (command_argument_count() > 2) then
    call get_command_argument(3, path)
    open (newunit=u, file=trim(path), access="stream", form="unformatted", status="replace")
    write (u) total
    close (u)
  end if
  call fastinv_deepem_destroy(deepem)

contains

  ! float32 sum in bin order, as the C example and NumPy's em.sum(axis=0)
  real(c_float) function sum_bins(v)
    real(c_float), intent(in) :: v(:)
    integer :: k
    sum_bins = 0.0_c_float
    do k = 1, size(v)
      sum_bins = sum_bins + v(k)
    end do
  end function

end program
