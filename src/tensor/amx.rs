//! bf16 matrix products on the CPU's matrix units (Intel AMX): what the
//! `bf16` precision of issue 25 will run its GEMMs on. Today `mbrl bench`
//! measures the unit's peak and this kernel's rate with it; no agent
//! multiplies in bf16 yet.
//!
//! A product `C += A B` rounds A and B to bf16 (round to nearest even),
//! multiplies on the tiles with `TDPBF16PS` (exact bf16 products, FP32
//! accumulation) and accumulates into FP32 `C`. A is packed into 16 x 32
//! tiles, B into 16 x 16 tiles in the unit's pair-interleaved layout, both
//! zero-padded at the edges, so any `m, n, k` works.
//!
//! Stable Rust reaches the tiles only through `asm!` (no intrinsics), and
//! no maintained Rust crate multiplies on them (`gemm` has no AMX path;
//! oneDNN would bring a C++ build), hence this small kernel.
//!
//! Invariants: every tile instruction runs after [`Amx::new`] has checked
//! the CPU (CPUID), the kernel's support (XCR0) and obtained Linux's
//! permission for the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); a
//! machine without them gets an error saying which is missing, never an
//! illegal instruction.

use std::fmt;

/// What the CPU and the kernel offer for bf16 products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Support {
    /// CPUID: the tile architecture and its bf16 dot products.
    pub amx_tile: bool,
    pub amx_bf16: bool,
    /// CPUID: AVX512-BF16 (vector bf16 dot products, without tiles).
    pub avx512_bf16: bool,
    /// XCR0: the OS saves the tile state on context switches.
    pub os_tiles: bool,
}

impl Support {
    /// This machine's, from CPUID and XCR0.
    pub fn detect() -> Support {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__cpuid, __cpuid_count};
            #[allow(unused_unsafe)]
            // SAFETY: CPUID exists on every x86-64 CPU.
            let max = unsafe { __cpuid(0) }.eax;
            if max < 7 {
                return Support::default();
            }
            #[allow(unused_unsafe)]
            // SAFETY: leaf 7 exists (checked above).
            let (l70, l71) = unsafe { (__cpuid_count(7, 0), __cpuid_count(7, 1)) };
            #[allow(unused_unsafe)]
            // SAFETY: leaf 1 always exists; XGETBV only runs when OSXSAVE says it may.
            let xcr0 = unsafe {
                match __cpuid(1).ecx & (1 << 27) != 0 {
                    true => xgetbv0(),
                    false => 0,
                }
            };
            Support {
                amx_tile: l70.edx & (1 << 24) != 0,
                amx_bf16: l70.edx & (1 << 22) != 0,
                avx512_bf16: l71.eax & (1 << 5) != 0,
                // XTILECFG (bit 17) and XTILEDATA (bit 18).
                os_tiles: xcr0 & (0b11 << 17) == 0b11 << 17,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Support::default()
    }

    /// Why tiles cannot be used here, if they cannot.
    pub fn tiles_missing(&self) -> Option<String> {
        let mut missing = Vec::new();
        if !self.amx_tile {
            missing.push("AMX tiles (CPUID amx_tile)");
        }
        if !self.amx_bf16 {
            missing.push("AMX bf16 products (CPUID amx_bf16)");
        }
        if self.amx_tile && !self.os_tiles {
            missing.push(
                "the kernel's support for the tile state (XCR0 bits 17-18; Linux 5.16 or later)",
            );
        }
        (!missing.is_empty()).then(|| format!("this CPU or kernel lacks {}", missing.join(", ")))
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "AMX tiles {}, AMX bf16 {}, OS tile state {}, AVX512-BF16 {}",
            yes(self.amx_tile),
            yes(self.amx_bf16),
            yes(self.os_tiles),
            yes(self.avx512_bf16)
        )
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller checked OSXSAVE; XGETBV 0 reads XCR0.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (hi as u64) << 32 | lo as u64
}

/// Proof that this process may use the tiles: the CPU and kernel have
/// them and Linux granted the permission.
#[derive(Clone, Copy, Debug)]
pub struct Amx(());

/// Rows (and the 64 bytes of a row) of every tile this kernel configures.
const ROWS: usize = 16;
const ROW_BYTES: usize = 64;
/// bf16 values along K per A tile.
const KT: usize = 32;

impl Amx {
    /// Checks the machine and asks Linux for the tile state (once per
    /// process; asking again is harmless).
    pub fn new() -> Result<Amx, String> {
        let support = Support::detect();
        if let Some(why) = support.tiles_missing() {
            return Err(why);
        }
        request_permission()?;
        Ok(Amx(()))
    }

    /// `c += a b` with `a` `m x k` and `b` `k x n` (row-major f32, rounded
    /// to bf16 here) and `c` `m x n` (row-major f32).
    pub fn gemm(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        let pb = self.pack_b(b, k, n);
        self.gemm_packed(m, a, &pb, c);
    }

    /// `b` (`k x n`, row-major f32) rounded to bf16 and packed for
    /// [`Amx::gemm_packed`]: a layer's weights, packed once for many products.
    pub fn pack_b(&self, b: &[f32], k: usize, n: usize) -> PackedB {
        assert_eq!(b.len(), k * n, "pack_b: shape");
        // Column tiles in pairs (the kernel computes 2 x 2 tiles at a time).
        let (nt, kt) = (n.div_ceil(2 * ROWS) * 2, k.div_ceil(KT));
        PackedB {
            n,
            k,
            nt,
            kt,
            data: pack_b(b, k, n, nt, kt),
        }
    }

    /// `c += a b` with `a` `m x k` (row-major f32, rounded to bf16 here),
    /// `b` packed by [`Amx::pack_b`], `c` `m x n` (row-major f32): 2 x 2
    /// output tiles at a time on four accumulators.
    pub fn gemm_packed(&self, m: usize, a: &[f32], pb: &PackedB, c: &mut [f32]) {
        let (n, k, nt, kt) = (pb.n, pb.k, pb.nt, pb.kt);
        assert!(a.len() == m * k && c.len() == m * n, "gemm: shapes");
        let mt = m.div_ceil(2 * ROWS) * 2;
        let pa = pack_a(a, m, k, mt, kt);
        let tile = ROWS * KT;
        let mut out = [0f32; 4 * ROWS * ROWS];
        let _tiles = Tiles::configure();
        for i in (0..mt).step_by(2) {
            for j in (0..nt).step_by(2) {
                // SAFETY: tiles configured (16 x 64 bytes each) on this
                // thread; each load reads one packed 1 KiB tile inside
                // `pa` (tiles i, i + 1 < mt) or `pb.data` (j, j + 1 < nt);
                // each store writes one 1 KiB quarter of `out`.
                unsafe {
                    std::arch::asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    for l in 0..kt {
                        std::arch::asm!(
                            "tileloadd tmm4, [{a0} + {s}*1]",
                            "tileloadd tmm5, [{a1} + {s}*1]",
                            "tileloadd tmm6, [{b0} + {s}*1]",
                            "tileloadd tmm7, [{b1} + {s}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) pa.as_ptr().add((i * kt + l) * tile),
                            a1 = in(reg) pa.as_ptr().add(((i + 1) * kt + l) * tile),
                            b0 = in(reg) pb.data.as_ptr().add((j * kt + l) * tile),
                            b1 = in(reg) pb.data.as_ptr().add(((j + 1) * kt + l) * tile),
                            s = in(reg) ROW_BYTES,
                            options(nostack, readonly),
                        );
                    }
                    let o = out.as_mut_ptr();
                    std::arch::asm!(
                        "tilestored [{c0} + {s}*1], tmm0",
                        "tilestored [{c1} + {s}*1], tmm1",
                        "tilestored [{c2} + {s}*1], tmm2",
                        "tilestored [{c3} + {s}*1], tmm3",
                        c0 = in(reg) o,
                        c1 = in(reg) o.add(ROWS * ROWS),
                        c2 = in(reg) o.add(2 * ROWS * ROWS),
                        c3 = in(reg) o.add(3 * ROWS * ROWS),
                        s = in(reg) ROW_BYTES,
                        options(nostack),
                    );
                }
                for (q, (di, dj)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                    let (r0, c0) = ((i + di) * ROWS, (j + dj) * ROWS);
                    if r0 >= m || c0 >= n {
                        continue;
                    }
                    let quarter = &out[q * ROWS * ROWS..(q + 1) * ROWS * ROWS];
                    for r in 0..ROWS.min(m - r0) {
                        let cols = ROWS.min(n - c0);
                        let dst = &mut c[(r0 + r) * n + c0..(r0 + r) * n + c0 + cols];
                        for (d, v) in dst.iter_mut().zip(&quarter[r * ROWS..r * ROWS + cols]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }

    /// GFLOP/s of one thread running `TDPBF16PS` on four independent
    /// accumulators, the best of three runs of about `seconds / 4` each (the
    /// unit's peak; 16 x 16 x 32 x 2 FLOP an instruction, at best one
    /// instruction every 16 cycles: 1,024 FLOP a cycle).
    pub fn peak_gflops(&self, seconds: f64) -> f64 {
        const UNROLL: u64 = 4;
        let a = vec![0u16; ROWS * KT];
        let b = vec![0u16; ROWS * KT];
        let _tiles = Tiles::configure();
        // SAFETY: as in `gemm`: configured tiles, 1 KiB loads.
        unsafe {
            std::arch::asm!(
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm5, [{b} + {s}*1]",
                "tileloadd tmm6, [{b} + {s}*1]",
                "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                a = in(reg) a.as_ptr(),
                b = in(reg) b.as_ptr(),
                s = in(reg) ROW_BYTES,
                options(nostack, readonly),
            );
        }
        let run = |iters: u64| {
            let start = std::time::Instant::now();
            // SAFETY: register-only tile products.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "tdpbf16ps tmm0, tmm4, tmm5",
                    "tdpbf16ps tmm1, tmm4, tmm6",
                    "tdpbf16ps tmm2, tmm4, tmm5",
                    "tdpbf16ps tmm3, tmm4, tmm6",
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) iters => _,
                    options(nostack, nomem),
                );
            }
            start.elapsed().as_secs_f64()
        };
        // Grow the loop to a quarter of the time (the first runs also wake
        // the unit up), then keep the best of three.
        let mut iters = 1000u64;
        while run(iters) < seconds / 4.0 {
            iters *= 4;
        }
        let secs = (0..3).map(|_| run(iters)).fold(f64::MAX, f64::min);
        (iters * UNROLL) as f64 * (ROWS * ROWS * KT * 2) as f64 / secs / 1e9
    }
}

/// A `k x n` matrix rounded to bf16 and packed into the tiles' layout
/// (`nt x kt` tiles, `nt` even), for [`Amx::gemm_packed`].
#[derive(Clone, Debug)]
pub struct PackedB {
    n: usize,
    k: usize,
    nt: usize,
    kt: usize,
    data: Vec<u16>,
}

/// The tile configuration of this thread, released when dropped.
struct Tiles;

impl Tiles {
    fn configure() -> Tiles {
        // Palette 1; tiles 0-7 of 16 rows x 64 bytes.
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        for t in 0..8 {
            cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&(ROW_BYTES as u16).to_le_bytes());
            cfg[48 + t] = ROWS as u8;
        }
        // SAFETY: only built by `Amx`'s methods, after the permission.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
        }
        Tiles
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: returns the tiles to their initial state.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
    }
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`.
fn request_permission() -> Result<(), String> {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a syscall with integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(format!(
            "Linux refused the tile state (arch_prctl ARCH_REQ_XCOMP_PERM: {})",
            std::io::Error::last_os_error()
        )),
    }
}

/// `x` rounded to bf16 (nearest, ties to even), as its 16 bits.
pub fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 a bf16 stands for.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// A packed as `mt x kt` tiles of 16 rows x 32 bf16, zero-padded.
fn pack_a(a: &[f32], m: usize, k: usize, mt: usize, kt: usize) -> Vec<u16> {
    let mut out = vec![0u16; mt * kt * ROWS * KT];
    for (i, row) in a.chunks_exact(k).enumerate().take(m) {
        for (l0, part) in row.chunks(KT).enumerate() {
            let at = ((i / ROWS) * kt + l0) * ROWS * KT + (i % ROWS) * KT;
            for (o, x) in out[at..at + part.len()].iter_mut().zip(part) {
                *o = bf16(*x);
            }
        }
    }
    out
}

/// B packed as `nt x kt` tiles in the pair-interleaved layout `TDPBF16PS`
/// reads: tile row `r` holds, for each of 16 columns, `B[2r][col]` and
/// `B[2r + 1][col]` side by side; zero-padded.
fn pack_b(b: &[f32], k: usize, n: usize, nt: usize, kt: usize) -> Vec<u16> {
    let mut out = vec![0u16; nt * kt * ROWS * KT];
    for (l, row) in b.chunks_exact(n).enumerate().take(k) {
        let (r, pair) = ((l % KT) / 2, l % 2);
        for (j0, part) in row.chunks(ROWS).enumerate() {
            let at = ((j0 * kt + l / KT) * ROWS + r) * KT + pair;
            for (q, x) in part.iter().enumerate() {
                out[at + 2 * q] = bf16(*x);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding to bf16: exact values stay, ties go to even, the rest to nearest.
    #[test]
    fn bf16_rounds_to_nearest_even() {
        for x in [0.0f32, 1.0, -2.5, 1.0 + 1.0 / 128.0] {
            assert_eq!(from_bf16(bf16(x)), x);
        }
        // Halfway between 1 and 1 + 2^-7: to even (1).
        assert_eq!(from_bf16(bf16(1.0 + 1.0 / 256.0)), 1.0);
        // Halfway between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6).
        assert_eq!(from_bf16(bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert_eq!(from_bf16(bf16(1.0 + 1.1 / 256.0)), 1.0 + 1.0 / 128.0);
        assert!(from_bf16(bf16(f32::NAN)).is_nan());
    }

    /// Without tiles (or with tiles the kernel does not save) bf16 on the
    /// tiles is refused, saying what is missing.
    #[test]
    fn missing_tiles_are_named() {
        let none = Support::default();
        let why = none.tiles_missing().unwrap();
        assert!(
            why.contains("amx_tile") && why.contains("amx_bf16"),
            "{why}"
        );
        let no_os = Support {
            amx_tile: true,
            amx_bf16: true,
            avx512_bf16: true,
            os_tiles: false,
        };
        assert!(no_os.tiles_missing().unwrap().contains("XCR0"));
        let all = Support {
            os_tiles: true,
            ..no_os
        };
        assert_eq!(all.tiles_missing(), None);
    }

    /// On the tiles, `C += A B` equals the FP32 product of the same
    /// bf16-rounded inputs up to summation order (within `(k + 1)` FP32
    /// roundings of the sum of |a b|, the bound of any order), at shapes that are not multiples of the tiles; C accumulates.
    #[test]
    #[ignore = "needs AMX (amx_tile, amx_bf16 in /proc/cpuinfo): scripts/test.sh runs it where the CPU has it"]
    fn amx_products_match_fp32_products_of_the_rounded_inputs() {
        let amx = Amx::new().expect("this test needs AMX");
        let mut rng = 0x2545f4914f6cdd1du64;
        let mut draw = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for (m, n, k) in [(1, 1, 1), (16, 16, 32), (37, 29, 70), (64, 48, 200)] {
            let a: Vec<f32> = (0..m * k).map(|_| draw()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| draw()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| draw()).collect();
            let mut c = c0.clone();
            amx.gemm(m, n, k, &a, &b, &mut c);
            // B packed once serves again, to the same bits.
            let pb = amx.pack_b(&b, k, n);
            let mut again = c0.clone();
            amx.gemm_packed(m, &a, &pb, &mut again);
            assert_eq!(again, c, "({m}, {n}, {k}): packed once");
            for i in 0..m {
                for j in 0..n {
                    let (mut want, mut scale) = (c0[i * n + j] as f64, c0[i * n + j].abs() as f64);
                    for l in 0..k {
                        let p = from_bf16(bf16(a[i * k + l])) as f64
                            * from_bf16(bf16(b[l * n + j])) as f64;
                        want += p;
                        scale += p.abs();
                    }
                    let got = c[i * n + j] as f64;
                    assert!(
                        (got - want).abs() <= (k + 1) as f64 * f32::EPSILON as f64 * scale,
                        "({m}, {n}, {k}) at ({i}, {j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
