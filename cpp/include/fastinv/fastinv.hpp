// Umbrella header for embedding fastinv in C++: the engine (Model, runtime, errors) and
// both science domains (dem/, stokes/).
#pragma once
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "fastinv/runtime.hpp"

#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/dem/deepem.hpp"

#include "fastinv/stokes/faddeeva.hpp"
#include "fastinv/stokes/lines.hpp"
#include "fastinv/stokes/lte.hpp"
#include "fastinv/stokes/me_inversion.hpp"
#include "fastinv/stokes/milne_eddington.hpp"
#include "fastinv/stokes/spectral_operator.hpp"
#include "fastinv/stokes/zeeman.hpp"
