// Umbrella header for embedding fastinv in C++.
#pragma once
#include "fastinv/basis_pursuit.hpp"
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "fastinv/runtime.hpp"
