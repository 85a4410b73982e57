// C++ tests of the Milne-Eddington inversion's public API (me_inversion.hpp,
// MilneEddington::profile_and_jacobian), run under ASan + UBSan in CI through ctest: the
// derivative kernel's blocked reads, the per-thread scratch and the restarts.
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "check.hpp"
#include "fastinv/error.hpp"
#include "fastinv/stokes/me_inversion.hpp"

namespace {

using namespace fastinv;
using namespace fastinv::stokes;
using fastinv_test::throws_with;

std::shared_ptr<MilneEddington> model(int n) {
  std::vector<double> wl;
  for (int i = 0; i < n; ++i) wl.push_back(6300.9 + 2.2 * i / (n - 1));
  return std::make_shared<MilneEddington>(std::vector<SpectralLine>{get_line("FeI_6301"), get_line("FeI_6302")}, wl);
}

// n not a multiple of the kernel's 8-point blocks: the last block is partial
constexpr int kN = 101;

// both kernels: float64, and float32 (16-point blocks, so 101 leaves a partial one too;
// float32 vs float64 is within 1e-5 of the largest derivative, tests/stokes/test_me_derivatives.py)
class MEDerivatives : public ::testing::TestWithParam<MEPrecision> {};

TEST_P(MEDerivatives, MatchCentralDifferences) {
  auto me = model(kN);
  MEScratch s;
  const double p[kMeProfileParameters] = {900, 50, 30, 0.4, 30, 0.3, 10, 0.2, 0.8, 0.8, 0.0};
  std::vector<double> prof(4 * kN), jac(kMeDerivParameters * 4 * kN), up(4 * kN), down(4 * kN);
  me->profile_and_jacobian(p, 0.8, s, prof.data(), jac.data(), nullptr, GetParam());
  const double steps[kMeDerivParameters] = {1.0, 0.03, 0.03, 1e-3, 0.03, 3e-4, 1e-2, 1e-4, 1e-4, 1e-4};
  // (vmac: no instrument here, so no vmac row; tests/stokes/test_me_derivatives.py checks it)
  for (int k = 0; k < kMeDerivParameters - 1; ++k) {
    double q[kMeProfileParameters];
    std::copy(p, p + kMeProfileParameters, q);
    q[k] = p[k] + steps[k];
    me->profile(q, 0.8, s, up.data());
    q[k] = p[k] - steps[k];
    me->profile(q, 0.8, s, down.data());
    double err = 0.0, scale = 0.0;
    for (int j = 0; j < 4 * kN; ++j) {
      const double fd = (up[j] - down[j]) / (2 * steps[k]);
      err = std::max(err, std::fabs(fd - jac[k * 4 * kN + j]));
      scale = std::max(scale, std::fabs(jac[k * 4 * kN + j]));
    }
    EXPECT_LT(err, (GetParam() == MEPrecision::float32 ? 3e-5 : 2e-5) * scale) << "parameter " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, MEDerivatives, ::testing::Values(MEPrecision::float64, MEPrecision::float32));

TEST(MEInversion, RecoversStatusesAndIsDeterministic) {
  auto me = model(kN);
  MEInversionOptions o;
  o.restarts = 2;
  MEInversion inv(me, o);
  const int n = 6;
  std::vector<double> truth = {1500, 40, 60, 0.5, 30, 0.2, 12, 0.2, 0.8, 1, 0};
  std::vector<double> stokes(n * 4 * kN), sigma(4 * kN, 1e-3), init;
  MEScratch s;
  for (int i = 0; i < n; ++i) {
    me->profile(truth.data(), 1.0, s, stokes.data() + i * 4 * kN);
    for (int k = 0; k < kMeInvParameters; ++k)
      init.push_back(k < kMeProfileParameters ? truth[k] * (1.0 + 0.02 * (i + 1)) : 0.0);
    init[i * kMeInvParameters + 9] = 1.0;
  }
  stokes[1 * 4 * kN + 7] = std::numeric_limits<double>::quiet_NaN();  // pixel 1: bad input
  for (int j = 0; j < kN; ++j) stokes[2 * 4 * kN + j] = 0.0;          // pixel 2: too dark
  auto run = [&](int threads, std::vector<double>& par, std::vector<int8_t>& st, std::vector<double>& fit) {
    std::vector<double> err(n * kMeInvParameters), cor(n * kMeCorrelated * kMeCorrelated), chi(n * 5);
    std::vector<int32_t> it(n);
    std::vector<int8_t> rs(n);
    par.assign(n * kMeInvParameters, 0.0);
    st.assign(n, -1);
    fit.assign(n * 4 * kN, 0.0);
    MEInversionOutputs out{par.data(), err.data(), cor.data(), chi.data(), it.data(), rs.data(), st.data(), fit.data()};
    inv.invert(n, stokes.data(), sigma.data(), false, init.data(), out, threads);
  };
  std::vector<double> p1, p2, f1, f2;
  std::vector<int8_t> s1, s2;
  run(1, p1, s1, f1);
  run(2, p2, s2, f2);
  EXPECT_EQ(s1[1], static_cast<int8_t>(MeInversionStatus::bad_input));
  EXPECT_EQ(s1[2], static_cast<int8_t>(MeInversionStatus::too_dark));
  EXPECT_TRUE(std::isnan(p1[1 * kMeInvParameters]));
  for (int i : {0, 3, 4, 5}) {
    EXPECT_EQ(s1[i], static_cast<int8_t>(MeInversionStatus::ok));
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(p1[i * kMeInvParameters + k], truth[k], 1e-4 * (1 + truth[k]));
  }
  for (size_t j = 0; j < p1.size(); ++j)  // bitwise, NaN included
    EXPECT_TRUE(p1[j] == p2[j] || (std::isnan(p1[j]) && std::isnan(p2[j])));
  EXPECT_EQ(s1, s2);
}

TEST(MEInversion, RejectsBadOptions) {
  auto me = model(kN);
  MEInversionOptions o;
  o.lower[0] = 10.0;
  o.upper[0] = 1.0;
  EXPECT_TRUE(throws_with<InvalidArgument>([&] { MEInversion(me, o); }, "box limits"));
  MEInversionOptions w;
  w.weights = {0, 0, 0, 0};
  EXPECT_TRUE(throws_with<InvalidArgument>([&] { MEInversion(me, w); }, "weight"));
  EXPECT_TRUE(throws_with<InvalidArgument>([&] { MEInversion(nullptr, MEInversionOptions{}); }, "no Milne"));
}

}  // namespace
