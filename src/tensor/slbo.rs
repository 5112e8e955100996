//! SLBO's running normalizers (vaslbo spec §1.3). The learner's model
//! losses and optimizer live in `kinds::slbo::learner`; dfdx-taped
//! references of them are test oracles (`tensor::oracles::slbo`).

/// SLBO's running Gaussian normalizer, one per seed, merged batch by batch:
/// `d = mean(x - mu)`, `n' = n + m`, `mu' = mu + d m / n'`,
/// `sigma'^2 = (sigma^2 n + var(x - mu) m + d^2 n m / n') / n'`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub count: f64,
}

impl Normalizer {
    pub fn new(dim: usize) -> Normalizer {
        Normalizer {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
            count: 0.0,
        }
    }

    /// Merges a batch of rows (`rows.len()` a multiple of the dimension).
    pub fn update(&mut self, rows: &[f32]) {
        let dim = self.mean.len();
        let m = (rows.len() / dim) as f64;
        if m == 0.0 || self.count.is_infinite() {
            return;
        }
        let n = self.count;
        let total = n + m;
        for d in 0..dim {
            let centred: Vec<f64> = rows
                .chunks(dim)
                .map(|r| r[d] as f64 - self.mean[d])
                .collect();
            let delta = centred.iter().sum::<f64>() / m;
            let var = centred.iter().map(|c| (c - delta).powi(2)).sum::<f64>() / m;
            let merged =
                (self.std[d].powi(2) * n + var * m + delta * delta * n * m / total) / total;
            self.mean[d] += delta * m / total;
            self.std[d] = merged.sqrt();
        }
        self.count = total;
    }

    /// The identity: mean 0 and std 1 that no update changes (`normalize: none`).
    pub fn identity(dim: usize) -> Normalizer {
        Normalizer {
            count: f64::INFINITY,
            ..Normalizer::new(dim)
        }
    }

    /// `x sigma + mu`, the inverse of [`Normalizer::normalize`] (for
    /// `sigma >= 1e-8`).
    pub fn denormalize(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        x.chunks(dim)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(d, v)| (*v as f64 * self.std[d] + self.mean[d]) as f32)
            })
            .collect()
    }

    /// `(x - mu) / max(sigma, 1e-8)`.
    pub fn normalize(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        x.chunks(dim)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(d, v)| ((*v as f64 - self.mean[d]) / self.std[d].max(1e-8)) as f32)
            })
            .collect()
    }
}
