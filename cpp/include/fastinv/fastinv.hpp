// Umbrella header for embedding fastinv in C++: the engine (Model, runtime, errors, data),
// both science domains (dem/, stokes/) and their applications (DeepEm, AiaBasisPursuit,
// StokesNetwork). C programs use fastinv/fastinv.h instead.
#pragma once
#include "fastinv/data.hpp"
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "fastinv/runtime.hpp"

#include "fastinv/dem/aia_basis_pursuit.hpp"
#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/dem/deepem.hpp"
#include "fastinv/dem/response.hpp"

#include "fastinv/stokes/faddeeva.hpp"
#include "fastinv/stokes/lines.hpp"
#include "fastinv/stokes/lte.hpp"
#include "fastinv/stokes/me_inversion.hpp"
#include "fastinv/stokes/milne_eddington.hpp"
#include "fastinv/stokes/network.hpp"
#include "fastinv/stokes/spectral_operator.hpp"
#include "fastinv/stokes/zeeman.hpp"
