//! Scalar kernels of the diagonal Gaussian policy that TRPO needs (vaslbo
//! spec §2.2, §3): the error function (dfdx and the standard library have
//! none), SLBO's limited entropy with its gradient, and the per-dimension
//! log-density and KL divergence.
//!
//! Invariants: pure functions of their arguments, in f64 where precision
//! matters; no allocation.

/// `ln(2 pi) / 2`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// The error function `erf(x) = 2/sqrt(pi) int_0^x e^{-t^2} dt`, to about
/// 1e-15: the series `erf x = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!`,
/// whose terms are all positive (no cancellation); beyond |x| = 6 it is
/// +-1 to f64 precision.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    if a >= 6.0 {
        return x.signum();
    }
    let mut term = a;
    let mut sum = a;
    let mut n = 0.0;
    while term > sum * 1e-17 {
        n += 1.0;
        term *= 2.0 * a * a / (2.0 * n + 1.0);
        sum += term;
    }
    (FRAC_2_SQRT_PI * (-a * a).exp() * sum).min(1.0).copysign(x)
}

/// `d erf / dx = 2/sqrt(pi) e^{-x^2}`.
pub fn erf_slope(x: f64) -> f64 {
    FRAC_2_SQRT_PI * (-x * x).exp()
}

/// SLBO's `LimitedEntNormal` entropy of `N(mu, sigma)`, restricted to
/// `[-limit, limit]`, exactly as the released code writes it: with
/// `h = (limit - mu) / (sigma sqrt 2)` and `l = (-limit - mu) / (sigma sqrt 2)`,
/// `H = (ln sigma + ln(2 pi)/2) (erf h - erf l) / 2 + (e^{-h^2} h - e^{-l^2} l) / 2`.
/// Returns `(H, dH/dmu, dH/d ln sigma)`.
pub fn limited_entropy(mu: f64, log_sigma: f64, limit: f64) -> (f64, f64, f64) {
    let sigma = log_sigma.exp();
    let k = 1.0 / (sigma * std::f64::consts::SQRT_2);
    let (h, l) = ((limit - mu) * k, (-limit - mu) * k);
    let c = log_sigma + HALF_LN_2PI;
    let (erf_h, erf_l) = (erf(h), erf(l));
    let (eh, el) = ((-h * h).exp(), (-l * l).exp());
    let value = 0.5 * c * (erf_h - erf_l) + 0.5 * (eh * h - el * l);
    // d(e^{-x^2} x)/dx = e^{-x^2} (1 - 2 x^2); dh/dmu = dl/dmu = -k;
    // dh/d ln sigma = -h, dl/d ln sigma = -l.
    let (dh_term, dl_term) = (eh * (1.0 - 2.0 * h * h), el * (1.0 - 2.0 * l * l));
    let (sh, sl) = (erf_slope(h), erf_slope(l));
    let d_mu = -k * (0.5 * c * (sh - sl) + 0.5 * (dh_term - dl_term));
    let d_log_sigma =
        0.5 * (erf_h - erf_l) + 0.5 * c * (-h * sh + l * sl) + 0.5 * (-h * dh_term + l * dl_term);
    (value, d_mu, d_log_sigma)
}

/// `log N(a; mu, sigma)` of one dimension.
pub fn log_density(a: f64, mu: f64, log_sigma: f64) -> f64 {
    let z = (a - mu) * (-log_sigma).exp();
    -0.5 * z * z - log_sigma - HALF_LN_2PI
}

/// `KL(N(mu_old, sigma_old) || N(mu, sigma))` of one dimension.
pub fn kl(mu_old: f64, log_sigma_old: f64, mu: f64, log_sigma: f64) -> f64 {
    let var = (2.0 * log_sigma).exp();
    let spread = (2.0 * log_sigma_old).exp() + (mu_old - mu).powi(2);
    log_sigma - log_sigma_old + spread / (2.0 * var) - 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of erf from tables (Abramowitz and Stegun 7.1).
    #[test]
    fn erf_matches_tabulated_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-14);
        }
        assert_eq!(erf(7.0), 1.0);
    }

    /// The limited entropy's gradient against central differences, across
    /// means inside and outside the limit and stds small and large.
    #[test]
    fn limited_entropy_gradient_matches_finite_differences() {
        let h = 1e-6;
        for mu in [-3.0, -1.2, 0.0, 0.4, 2.5] {
            for log_sigma in [-2.0, -0.5, 0.0, 0.7] {
                let (_, d_mu, d_ls) = limited_entropy(mu, log_sigma, 2.0);
                let f = |m: f64, s: f64| limited_entropy(m, s, 2.0).0;
                let fd_mu = (f(mu + h, log_sigma) - f(mu - h, log_sigma)) / (2.0 * h);
                let fd_ls = (f(mu, log_sigma + h) - f(mu, log_sigma - h)) / (2.0 * h);
                assert!(
                    (d_mu - fd_mu).abs() < 1e-7,
                    "mu {mu} ls {log_sigma}: {d_mu} vs {fd_mu}"
                );
                assert!(
                    (d_ls - fd_ls).abs() < 1e-7,
                    "mu {mu} ls {log_sigma}: {d_ls} vs {fd_ls}"
                );
            }
        }
    }

    /// With a wide limit and a narrow Gaussian the released formula is the
    /// Gaussian's entropy up to its constant term: `ln sigma + ln(2 pi)/2`.
    #[test]
    fn limited_entropy_far_from_the_limit() {
        let (value, _, d_ls) = limited_entropy(0.1, -1.0, 50.0);
        assert!((value - (-1.0 + HALF_LN_2PI)).abs() < 1e-12);
        assert!((d_ls - 1.0).abs() < 1e-12);
    }
}
