//! splitmix64: small, deterministic pseudo-random numbers for generated test data, without
//! extra dependencies.

/// A splitmix64 generator; the same seed gives the same sequence on every machine.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in (0, 1) from the top 24 bits (never 0, so its logarithm is finite).
    pub fn unit_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// A standard normal value (Box–Muller on two [`Self::unit_f32`] draws).
    pub fn normal_f32(&mut self) -> f32 {
        let (u, v) = (self.unit_f32(), self.unit_f32());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// A uniform value in [0, 1) from the top 53 bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal value computed in `f64` (Box–Muller on two [`Self::unit_f64`] draws).
    pub fn gauss(&mut self) -> f32 {
        let (u1, u2) = (self.unit_f64().max(1e-300), self.unit_f64());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// xorshift64 (13, 7, 17): the cheaper generator of the tests that only need uniform values.
/// The state must not be zero.
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniform value in [-0.5, 0.5), from the top 24 bits.
    pub fn centered(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// A uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
