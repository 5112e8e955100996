//! bf16 matrix products on the CPU's matrix units (Intel AMX): what an
//! agent's `precision: bf16` runs its networks' products on
//! ([`crate::tensor::fused`]), and what `mbrl bench` measures.
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
/// A packed tile in `u32`s (16 rows of 16 bf16 pairs).
const TILE: usize = ROWS * KT / 2;
/// The output tiles of a 2 x 2 block, in accumulator order (tmm0-tmm3).
const QUARTERS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

impl Amx {
    /// Checks the machine and asks Linux for the tile state (once per
    /// process; asking again is harmless).
    pub fn new() -> Result<Amx, String> {
        let support = Support::detect();
        if let Some(why) = support.tiles_missing() {
            return Err(why);
        }
        // The packing runs on AVX-512 (every CPU with AMX has it).
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            return Err("this CPU has AMX but not AVX-512 (avx512f, avx512bw), which mbrl packs its operands with".into());
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
        PackedB::new(View::row_major(b, k, n))
    }

    /// `c += a b` with `a` `m x k` (row-major f32, rounded to bf16 here),
    /// `b` packed by [`Amx::pack_b`], `c` `m x n` (row-major f32).
    pub fn gemm_packed(&self, m: usize, a: &[f32], pb: &PackedB, c: &mut [f32]) {
        assert!(a.len() == m * pb.k && c.len() == m * pb.n, "gemm: shapes");
        self.product(View::row_major(a, m, pb.k), pb, c, true);
    }

    /// `c = a b` (or `c += a b` with `accumulate`) for any strided `a` and
    /// `b`, `c` row-major `m x n`: both operands rounded to bf16 and packed
    /// once, FP32 accumulation. What `precision: bf16` runs every product of
    /// a network on ([`crate::tensor::fused`]).
    pub fn gemm_views(&self, a: View, b: View, c: &mut [f32], accumulate: bool) {
        assert_eq!(a.cols, b.rows, "gemm: inner dimensions");
        PACKED_B.with(|buf| {
            let mut pb = PackedB::empty(std::mem::take(&mut *buf.borrow_mut()));
            pb.pack(b);
            self.product(a, &pb, c, accumulate);
            *buf.borrow_mut() = pb.data;
        })
    }

    /// `c (+)= a b` on the tiles: 2 x 2 output tiles at a time on four
    /// accumulators, each output element a sum over `k` in one fixed order
    /// (so a row's result does not depend on the other rows).
    fn product(&self, a: View, pb: &PackedB, c: &mut [f32], accumulate: bool) {
        let (m, n, kt, nt) = (a.rows, pb.n, pb.kt, pb.nt);
        assert!(a.cols == pb.k && c.len() >= m * n, "gemm: shapes");
        let mt = m.div_ceil(2 * ROWS) * 2;
        PACKED_A.with(|pa| {
            let pa = &mut *pa.borrow_mut();
            // SAFETY: `self` proves AVX-512 (checked by `Amx::new`).
            unsafe { pack_a(a, mt, kt, pa) };
            self.tiles(m, n, mt, nt, kt, pa, &pb.data, c, accumulate);
        })
    }

    /// `a` rounded to bf16 and packed as the left operand of
    /// [`Amx::gemm_packed_a`]: a layer's weights, packed once for the many
    /// products of a rollout or an evaluation.
    pub fn pack_a(&self, a: View) -> PackedA {
        let (m, k) = (a.rows, a.cols);
        let (mt, kt) = (m.div_ceil(2 * ROWS) * 2, k.div_ceil(KT));
        let mut data = Vec::new();
        // SAFETY: `self` proves AVX-512 (checked by `Amx::new`).
        unsafe { pack_a(a, mt, kt, &mut data) };
        PackedA { m, k, mt, kt, data }
    }

    /// `b` rounded to bf16 and packed as the right operand of
    /// [`Amx::gemm_packed_b`].
    pub fn pack_b_view(&self, b: View) -> PackedB {
        PackedB::new(b)
    }

    /// `c (+)= a b` with `a` packed by [`Amx::pack_a`]: the same bits as
    /// [`Amx::gemm_views`] on the matrix it packed.
    pub fn gemm_packed_a(&self, pa: &PackedA, b: View, c: &mut [f32], accumulate: bool) {
        assert_eq!(pa.k, b.rows, "gemm: inner dimensions");
        PACKED_B.with(|buf| {
            let mut pb = PackedB::empty(std::mem::take(&mut *buf.borrow_mut()));
            pb.pack(b);
            assert!(c.len() >= pa.m * pb.n, "gemm: shapes");
            self.tiles(
                pa.m, pb.n, pa.mt, pb.nt, pa.kt, &pa.data, &pb.data, c, accumulate,
            );
            *buf.borrow_mut() = pb.data;
        })
    }

    /// `c (+)= a b` with `b` packed by [`Amx::pack_b_view`]: the same bits
    /// as [`Amx::gemm_views`] on the matrix it packed.
    pub fn gemm_packed_b(&self, a: View, pb: &PackedB, c: &mut [f32], accumulate: bool) {
        self.product(a, pb, c, accumulate);
    }

    /// The tile loop of [`Amx::product`] over packed operands.
    #[allow(clippy::too_many_arguments)]
    fn tiles(
        &self,
        m: usize,
        n: usize,
        mt: usize,
        nt: usize,
        kt: usize,
        pa: &[u32],
        pb: &[u32],
        c: &mut [f32],
        accumulate: bool,
    ) {
        let tile = TILE;
        assert!(pa.len() >= mt * kt * tile && pb.len() >= nt * kt * tile);
        // Where an output tile does not lie wholly inside `c` (the edges),
        // it goes through this buffer, so that every element is summed the
        // same way: the accumulator starts from `c` (or zero), then adds
        // the products in `k` order.
        let mut edge = [[0f32; ROWS * ROWS]; 4];
        let _tiles = Tiles::configure();
        for i in (0..mt).step_by(2) {
            for j in (0..nt).step_by(2) {
                // Each quarter's accumulator: a pointer and a row stride in bytes.
                let mut at = [(std::ptr::null_mut::<f32>(), 0usize); 4];
                for (q, (di, dj)) in QUARTERS.into_iter().enumerate() {
                    let (r0, c0) = ((i + di) * ROWS, (j + dj) * ROWS);
                    if r0 + ROWS <= m && c0 + ROWS <= n {
                        // SAFETY: rows r0..r0 + 16, columns c0..c0 + 16 lie in `c`.
                        at[q] = (unsafe { c.as_mut_ptr().add(r0 * n + c0) }, n * 4);
                        continue;
                    }
                    let buf = &mut edge[q];
                    buf.fill(0.0);
                    if accumulate && r0 < m && c0 < n {
                        for r in 0..ROWS.min(m - r0) {
                            let cols = ROWS.min(n - c0);
                            buf[r * ROWS..r * ROWS + cols]
                                .copy_from_slice(&c[(r0 + r) * n + c0..(r0 + r) * n + c0 + cols]);
                        }
                    }
                    at[q] = (buf.as_mut_ptr(), ROW_BYTES);
                }
                // SAFETY: tiles configured (16 x 64 bytes each) on this
                // thread; each accumulator reads and writes 16 rows of 64
                // bytes at `at[q]` with its stride (inside `c` or `edge`);
                // each operand load reads one packed 1 KiB tile inside `pa`
                // (tiles i, i + 1 < mt) or `pb` (j, j + 1 < nt).
                unsafe {
                    match accumulate {
                        true => std::arch::asm!(
                            "tileloadd tmm0, [{c0} + {s0}*1]",
                            "tileloadd tmm1, [{c1} + {s1}*1]",
                            "tileloadd tmm2, [{c2} + {s2}*1]",
                            "tileloadd tmm3, [{c3} + {s3}*1]",
                            c0 = in(reg) at[0].0, s0 = in(reg) at[0].1,
                            c1 = in(reg) at[1].0, s1 = in(reg) at[1].1,
                            c2 = in(reg) at[2].0, s2 = in(reg) at[2].1,
                            c3 = in(reg) at[3].0, s3 = in(reg) at[3].1,
                            options(nostack, readonly)
                        ),
                        false => std::arch::asm!(
                            "tilezero tmm0",
                            "tilezero tmm1",
                            "tilezero tmm2",
                            "tilezero tmm3",
                            options(nostack, nomem)
                        ),
                    }
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
                            b0 = in(reg) pb.as_ptr().add((j * kt + l) * tile),
                            b1 = in(reg) pb.as_ptr().add(((j + 1) * kt + l) * tile),
                            s = in(reg) ROW_BYTES,
                            options(nostack, readonly),
                        );
                    }
                    std::arch::asm!(
                        "tilestored [{c0} + {s0}*1], tmm0",
                        "tilestored [{c1} + {s1}*1], tmm1",
                        "tilestored [{c2} + {s2}*1], tmm2",
                        "tilestored [{c3} + {s3}*1], tmm3",
                        c0 = in(reg) at[0].0, s0 = in(reg) at[0].1,
                        c1 = in(reg) at[1].0, s1 = in(reg) at[1].1,
                        c2 = in(reg) at[2].0, s2 = in(reg) at[2].1,
                        c3 = in(reg) at[3].0, s3 = in(reg) at[3].1,
                        options(nostack),
                    );
                }
                for (q, (di, dj)) in QUARTERS.into_iter().enumerate() {
                    let (r0, c0) = ((i + di) * ROWS, (j + dj) * ROWS);
                    if r0 >= m || c0 >= n || (r0 + ROWS <= m && c0 + ROWS <= n) {
                        continue;
                    }
                    let cols = ROWS.min(n - c0);
                    for r in 0..ROWS.min(m - r0) {
                        c[(r0 + r) * n + c0..(r0 + r) * n + c0 + cols]
                            .copy_from_slice(&edge[q][r * ROWS..r * ROWS + cols]);
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
    data: Vec<u32>,
}

impl PackedB {
    fn new(b: View) -> PackedB {
        let mut pb = PackedB::empty(Vec::new());
        pb.pack(b);
        pb
    }

    /// No matrix yet, in the storage `data`.
    fn empty(data: Vec<u32>) -> PackedB {
        PackedB {
            n: 0,
            k: 0,
            nt: 0,
            kt: 0,
            data,
        }
    }

    /// Packs `b` over what it held.
    fn pack(&mut self, b: View) {
        // Column tiles in pairs (the kernel computes 2 x 2 tiles at a time).
        let (k, n) = (b.rows, b.cols);
        let (nt, kt) = (n.div_ceil(2 * ROWS) * 2, k.div_ceil(KT));
        *self = PackedB {
            n,
            k,
            nt,
            kt,
            data: std::mem::take(&mut self.data),
        };
        // SAFETY: only `Amx`'s methods pack, after `Amx::new` checked
        // AVX-512.
        unsafe { pack_b(b, nt, kt, &mut self.data) };
    }
}

/// An `m x k` matrix rounded to bf16 and packed into the tiles' layout
/// (`mt x kt` tiles, `mt` even), for [`Amx::gemm_packed_a`].
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    mt: usize,
    kt: usize,
    data: Vec<u32>,
}

impl PackedA {
    /// Its columns (the product's `k`).
    pub fn cols(&self) -> usize {
        self.k
    }
}

impl PackedB {
    /// Its rows (the product's `k`).
    pub fn rows(&self) -> usize {
        self.k
    }
}

/// A matrix read in place: element `(i, j)` of a `rows x cols` matrix is
/// `data[i * rs + j * cs]` (row-major: `cs = 1`; a transpose: `rs = 1`).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The `rows x cols` matrix stored `cols x rows` row-major.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    /// Panics unless every element lies inside `data`, and one of the two
    /// strides is 1 (the packing reads a row or a column at a time).
    fn check(&self) {
        assert!(
            self.rs == 1 || self.cs == 1,
            "view: neither rows nor columns contiguous"
        );
        assert!(
            self.rows == 0
                || self.cols == 0
                || self.data.len() > (self.rows - 1) * self.rs + (self.cols - 1) * self.cs,
            "view: out of bounds"
        );
    }
}

thread_local! {
    /// This thread's packed A, reused from product to product.
    static PACKED_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// This thread's packed B of [`Amx::gemm_views`].
    static PACKED_B: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
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
#[inline(always)]
pub fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    // A NaN stays a (quiet) NaN; branch-free, so conversions vectorize.
    match bits & 0x7fff_ffff > 0x7f80_0000 {
        true => ((bits >> 16) | 0x40) as u16,
        false => rounded as u16,
    }
}

/// The f32 a bf16 stands for.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Two values rounded to bf16 side by side, as a tile holds a pair along
/// `k`: `lo` (the even `k`) in the low half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16(lo) as u32 | (bf16(hi) as u32) << 16
}

/// `dst[q] = pair(x[q], y[q])` (a loop the compiler vectorizes); `y` may
/// be shorter (an odd `k`'s last row pairs with zeros).
#[inline(always)]
fn pairs(x: &[f32], y: Option<&[f32]>, dst: &mut [u32]) {
    match y {
        Some(y) => {
            for ((d, lo), hi) in dst.iter_mut().zip(x).zip(y) {
                *d = pair(*lo, *hi);
            }
        }
        None => {
            for (d, lo) in dst.iter_mut().zip(x) {
                *d = bf16(*lo) as u32;
            }
        }
    }
}

/// A run of pairs as its bf16 halves, in memory order.
#[inline(always)]
fn halves(pairs: &mut [u32]) -> &mut [u16] {
    // SAFETY: any u32 is two valid u16 and u16's alignment divides u32's;
    // the prefix and suffix are empty.
    let (before, mid, after) = unsafe { pairs.align_to_mut::<u16>() };
    debug_assert!(before.is_empty() && after.is_empty());
    mid
}

/// Resizes a packed buffer to `tiles_a x tiles_b` tiles (tile `(t, u)` at
/// `(t * tiles_b + u) * TILE`) and zeroes the tiles that `rows x cols`
/// does not cover wholly (rows of 16, columns of 32 `k`), the only ones
/// with padding; the rest is overwritten by the packing.
fn prepare(out: &mut Vec<u32>, tiles_a: usize, tiles_b: usize, rows: usize, k: usize) {
    out.resize(tiles_a * tiles_b * TILE, 0);
    for t in 0..tiles_a {
        for u in 0..tiles_b {
            if (t + 1) * ROWS > rows || (u + 1) * KT > k {
                out[(t * tiles_b + u) * TILE..(t * tiles_b + u + 1) * TILE].fill(0);
            }
        }
    }
}

/// A packed as `mt x kt` tiles of 16 rows x 32 bf16 (16 pairs along `k`),
/// zero-padded.
///
/// # Safety
/// The CPU has AVX-512 F and BW ([`Amx::new`] checked it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_a(a: View, mt: usize, kt: usize, out: &mut Vec<u32>) {
    let (m, k) = (a.rows, a.cols);
    a.check();
    prepare(out, mt, kt, m, k);
    const HALF: usize = KT / 2;
    if a.cs == 1 {
        // Rows of A are contiguous: a tile row is 16 pairs of one row.
        for i in 0..m {
            let row = &a.data[i * a.rs..i * a.rs + k];
            for (l0, part) in row.chunks(KT).enumerate() {
                let at = ((i / ROWS) * kt + l0) * TILE + (i % ROWS) * HALF;
                // Consecutive bf16 in memory are the pairs of a tile row
                // (little-endian: the even `k` in the low half).
                let dst = halves(&mut out[at..at + HALF]);
                for (d, x) in dst.iter_mut().zip(part) {
                    *d = bf16(*x);
                }
            }
        }
    } else {
        // Columns of A are contiguous: columns `l` and `l + 1` paired for
        // 16 rows at once, each pair then stored in its row of the tile.
        let mut run = [0u32; ROWS];
        for l in (0..k).step_by(2) {
            let x = &a.data[l * a.cs..];
            let y = (l + 1 < k).then(|| &a.data[(l + 1) * a.cs..]);
            for i0 in (0..m).step_by(ROWS) {
                let rows = ROWS.min(m - i0);
                pairs(
                    &x[i0..i0 + rows],
                    y.map(|y| &y[i0..i0 + rows]),
                    &mut run[..rows],
                );
                let at = ((i0 / ROWS) * kt + l / KT) * TILE + (l % KT) / 2;
                let dst = out[at..].iter_mut().step_by(HALF);
                dst.zip(&run[..rows]).for_each(|(d, v)| *d = *v);
            }
        }
    }
}

/// B packed as `nt x kt` tiles in the pair-interleaved layout `TDPBF16PS`
/// reads: tile row `r` holds, for each of 16 columns, `B[2r][col]` and
/// `B[2r + 1][col]` side by side (one `u32`); zero-padded.
///
/// # Safety
/// The CPU has AVX-512 F and BW ([`Amx::new`] checked it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_b(b: View, nt: usize, kt: usize, out: &mut Vec<u32>) {
    let (k, n) = (b.rows, b.cols);
    b.check();
    prepare(out, nt, kt, n, k);
    if b.cs == 1 {
        // Rows of B are contiguous: rows `l` and `l + 1` paired give one
        // tile row, 16 columns at a time.
        for l in (0..k).step_by(2) {
            let x = &b.data[l * b.rs..l * b.rs + n];
            let y = (l + 1 < k).then(|| &b.data[(l + 1) * b.rs..(l + 1) * b.rs + n]);
            let base = (l / KT) * TILE + ((l % KT) / 2) * ROWS;
            for j0 in (0..n).step_by(ROWS) {
                let cols = ROWS.min(n - j0);
                let at = (j0 / ROWS) * kt * TILE + base;
                pairs(
                    &x[j0..j0 + cols],
                    y.map(|y| &y[j0..j0 + cols]),
                    &mut out[at..at + cols],
                );
            }
        }
    } else {
        // Columns of B are contiguous: each pair along `l` is adjacent in
        // memory, stored one tile row apart.
        let mut run = [0u32; KT / 2];
        for j in 0..n {
            let col = &b.data[j * b.cs..j * b.cs + k];
            let base = (j / ROWS) * kt * TILE + j % ROWS;
            for (l0, part) in col.chunks(KT).enumerate() {
                run.fill(0);
                for (d, x) in halves(&mut run).iter_mut().zip(part) {
                    *d = bf16(*x);
                }
                let dst = out[base + l0 * TILE..].iter_mut().step_by(ROWS);
                dst.zip(&run[..part.len().div_ceil(2)])
                    .for_each(|(d, v)| *d = *v);
            }
        }
    }
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

    /// On the tiles, `C (+)= A B` equals the FP32 product of the same
    /// bf16-rounded inputs up to summation order (within `(k + 1)` FP32
    /// roundings of the sum of |a b|, the bound of any order), for A and B
    /// read row-major or transposed in place, at shapes that are not
    /// multiples of the tiles, assigning or accumulating; a row's result
    /// does not depend on the rows beside it (the same bits alone).
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
        // `rows x cols` row-major values, stored as such or transposed.
        let store = |x: &[f32], rows: usize, cols: usize, t: bool| -> Vec<f32> {
            match t {
                false => x.to_vec(),
                true => (0..cols * rows)
                    .map(|q| x[(q % rows) * cols + q / rows])
                    .collect(),
            }
        };
        let view = |x: &[f32], rows, cols, t| -> (Vec<f32>, usize, usize, usize, usize) {
            let data = store(x, rows, cols, t);
            let (rs, cs) = if t { (1, rows) } else { (cols, 1) };
            (data, rows, cols, rs, cs)
        };
        for (m, n, k) in [
            (1, 1, 1),
            (16, 16, 32),
            (37, 29, 70),
            (64, 48, 200),
            (5, 33, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| draw()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| draw()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| draw()).collect();
            for (a_t, b_t, accumulate) in (0..8).map(|q| (q & 1 == 1, q & 2 == 2, q & 4 == 4)) {
                let (ad, _, _, ars, acs) = view(&a, m, k, a_t);
                let (bd, _, _, brs, bcs) = view(&b, k, n, b_t);
                let av = View {
                    data: &ad,
                    rows: m,
                    cols: k,
                    rs: ars,
                    cs: acs,
                };
                let bv = View {
                    data: &bd,
                    rows: k,
                    cols: n,
                    rs: brs,
                    cs: bcs,
                };
                let mut c = c0.clone();
                amx.gemm_views(av, bv, &mut c, accumulate);
                let case =
                    format!("({m}, {n}, {k}), a_t {a_t}, b_t {b_t}, accumulate {accumulate}");
                for i in 0..m {
                    for j in 0..n {
                        let start = if accumulate {
                            c0[i * n + j] as f64
                        } else {
                            0.0
                        };
                        let (mut want, mut scale) = (start, start.abs());
                        for l in 0..k {
                            let p = from_bf16(bf16(a[i * k + l])) as f64
                                * from_bf16(bf16(b[l * n + j])) as f64;
                            want += p;
                            scale += p.abs();
                        }
                        let got = c[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= (k + 1) as f64 * f32::EPSILON as f64 * scale,
                            "{case} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
                // Row 0 alone: the same bits.
                let (ad1, _, _, ars1, acs1) = view(&a[..k], 1, k, a_t);
                let a1 = View {
                    data: &ad1,
                    rows: 1,
                    cols: k,
                    rs: ars1,
                    cs: acs1,
                };
                let mut c1 = c0[..n].to_vec();
                amx.gemm_views(a1, bv, &mut c1, accumulate);
                assert_eq!(c1, c[..n], "{case}: row 0 alone");
            }
            // The row-major entry points, and B packed once serving again.
            let mut c = c0.clone();
            amx.gemm(m, n, k, &a, &b, &mut c);
            let pb = amx.pack_b(&b, k, n);
            let mut again = c0.clone();
            amx.gemm_packed(m, &a, &pb, &mut again);
            assert_eq!(again, c, "({m}, {n}, {k}): packed once");
        }
    }
}
