// What the C API's opaque handles hold: the C++ application objects, immutable after creation.
#pragma once
#include "fastinv/dem/aia_basis_pursuit.hpp"
#include "fastinv/dem/deepem.hpp"
#include "fastinv/fastinv.h"
#include "fastinv/model.hpp"
#include "fastinv/stokes/me_inversion.hpp"
#include "fastinv/stokes/network.hpp"

struct fastinv_model {
  fastinv::Model model;
};

struct fastinv_deepem {
  fastinv::dem::DeepEm deepem;
};

struct fastinv_bp {
  fastinv::dem::AiaBasisPursuit bp;
};

struct fastinv_stokes {
  fastinv::stokes::StokesNetwork net;
};

struct fastinv_me {
  fastinv::stokes::MEInversion inv;
};
