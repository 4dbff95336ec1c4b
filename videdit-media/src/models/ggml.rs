//! Writing whisper.cpp's ggml model format: the header (magic, hyper-
//! parameters, mel filterbank, vocabulary) and tensors, f16 or quantized.
//!
//! The layout follows whisper.cpp's loader (`whisper_model_load`): every
//! field little-endian, tensors one after the other without alignment, each
//! as `n_dims, name length, type, dims (innermost first), name, data`.

use std::io::{self, Write};

/// `"ggml"` read as a little-endian u32.
pub const MAGIC: u32 = 0x6767_6d6c;
/// ggml's quantization format version; quantized files store
/// `ftype + QNT_VERSION * QNT_VERSION_FACTOR` as their file type.
const QNT_VERSION: i32 = 2;
const QNT_VERSION_FACTOR: i32 = 1000;
/// Values per quantization block (q8_0, q5_0, q5_1 all use 32).
pub const BLOCK: usize = 32;

/// How the big matrices of a model are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// Half precision: what whisper.cpp's own conversion writes.
    F16,
    /// 8-bit blocks with one f16 scale per 32 values (near-lossless).
    Q8_0,
    /// 5-bit blocks, symmetric.
    Q5_0,
    /// 5-bit blocks with a minimum.
    Q5_1,
}

impl WeightType {
    /// ggml's tensor type id.
    #[must_use]
    pub const fn ggml_type(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
        }
    }

    /// The file type stored in the hyper-parameters (ggml's `ftype`, with
    /// the quantization version folded in for quantized files).
    #[must_use]
    pub const fn file_type(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 7 + QNT_VERSION * QNT_VERSION_FACTOR,
            Self::Q5_0 => 8 + QNT_VERSION * QNT_VERSION_FACTOR,
            Self::Q5_1 => 9 + QNT_VERSION * QNT_VERSION_FACTOR,
        }
    }

    /// The suffix used in model names (`tiny.en-q8_0`); empty for f16.
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::F16 => "",
            Self::Q8_0 => "-q8_0",
            Self::Q5_0 => "-q5_0",
            Self::Q5_1 => "-q5_1",
        }
    }

    /// Parses `f16`, `q8_0`, `q5_0`, `q5_1`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Some(Self::F16),
            "q8_0" => Some(Self::Q8_0),
            "q5_0" => Some(Self::Q5_0),
            "q5_1" => Some(Self::Q5_1),
            _ => None,
        }
    }
}

/// Whisper's hyper-parameters, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    /// Vocabulary size including special and timestamp tokens.
    pub n_vocab: i32,
    /// Encoder positions (1500).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder layers.
    pub n_audio_layer: i32,
    /// Decoder positions (448).
    pub n_text_ctx: i32,
    /// Decoder width.
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder layers.
    pub n_text_layer: i32,
    /// Mel bands (80, or 128 for large-v3).
    pub n_mels: i32,
}

/// Whisper's audio front end: 16 kHz, 400-sample FFT, 201 frequency bins.
pub const SAMPLE_RATE: f64 = 16_000.0;
/// FFT size of whisper's STFT.
pub const N_FFT: usize = 400;

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney's scale: linear below 1 kHz, logarithmic above.
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ { min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep } else { hz / F_SP }
}

fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel { MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp() } else { F_SP * mel }
}

/// The Slaney-normalised mel filterbank whisper was trained with
/// (`librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`), row-major
/// `n_mels × 201`.
#[must_use]
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let n_bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * (SAMPLE_RATE / 2.0) / (n_bins - 1) as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (left, center, right) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        // Slaney normalisation: each triangle has unit area in Hz.
        let enorm = 2.0 / (right - left);
        for (b, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (center - left);
            let upper = (right - f) / (right - center);
            out[m * n_bins + b] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// GPT-2's byte-level BPE alphabet: byte `b` is shown as this character.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\0');
            extra += 1;
            c
        };
    }
    table
}

/// Decodes a token as written in a byte-level BPE vocabulary (`Ġhello`)
/// to its raw bytes (` hello`); `None` when a character is outside the
/// alphabet (a special token such as `<|endoftext|>` decodes fine, as ASCII).
#[must_use]
pub fn decode_bpe_token(token: &str) -> Option<Vec<u8>> {
    let table = byte_to_char();
    token.chars().map(|c| table.iter().position(|&t| t == c).and_then(|b| u8::try_from(b).ok())).collect()
}

/// Converts f32 to IEEE half precision bits (round to nearest even).
#[must_use]
pub fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Converts half precision bits to f32.
#[must_use]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// q8_0: per block of 32, an f16 scale `d = max|x| / 127` then 32 signed
/// bytes `round(x / d)`. `values.len()` must be a multiple of 32.
#[must_use]
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * (2 + BLOCK));
    for block in values.chunks(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16_bits(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// Inverse of [`quantize_q8_0`].
#[must_use]
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks(2 + BLOCK)
        .flat_map(|b| {
            let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            b[2..].iter().map(move |&q| f32::from(q as i8) * d)
        })
        .collect()
}

/// q5_0: per block an f16 scale (from the value of largest magnitude, so
/// that it maps to -16), 32 high bits, then 16 bytes of low nibbles.
#[must_use]
pub fn quantize_q5_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * 22);
    for block in values.chunks(BLOCK) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in block {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let q = |x: f32| ((x * id + 16.5) as i8).min(31) as u8;
        pack_q5(&mut out, &[f16_bits(d)], block, q);
    }
    out
}

/// q5_1: per block an f16 scale and an f16 minimum, 32 high bits, then 16
/// bytes of low nibbles.
#[must_use]
pub fn quantize_q5_1(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * 24);
    for block in values.chunks(BLOCK) {
        let min = block.iter().copied().fold(f32::MAX, f32::min);
        let max = block.iter().copied().fold(f32::MIN, f32::max);
        let d = (max - min) / 31.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let q = |x: f32| ((x - min) * id + 0.5) as u8;
        pack_q5(&mut out, &[f16_bits(d), f16_bits(min)], block, q);
    }
    out
}

fn pack_q5(out: &mut Vec<u8>, header: &[u16], block: &[f32], q: impl Fn(f32) -> u8) {
    for h in header {
        out.extend_from_slice(&h.to_le_bytes());
    }
    let half = BLOCK / 2;
    let mut qh = 0u32;
    let mut qs = [0u8; BLOCK / 2];
    for j in 0..half {
        let (x0, x1) = (q(block[j]), q(block[half + j]));
        qs[j] = (x0 & 0x0F) | ((x1 & 0x0F) << 4);
        qh |= u32::from((x0 & 0x10) >> 4) << j;
        qh |= u32::from((x1 & 0x10) >> 4) << (j + half);
    }
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend_from_slice(&qs);
}

/// Dequantizes q5_0 (`with_min = false`) or q5_1 (`with_min = true`) blocks.
#[must_use]
pub fn dequantize_q5(bytes: &[u8], with_min: bool) -> Vec<f32> {
    let header = if with_min { 4 } else { 2 };
    bytes
        .chunks(header + 4 + BLOCK / 2)
        .flat_map(|b| {
            let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let m = if with_min { f16_to_f32(u16::from_le_bytes([b[2], b[3]])) } else { 0.0 };
            let qh = u32::from_le_bytes([b[header], b[header + 1], b[header + 2], b[header + 3]]);
            let qs = &b[header + 4..];
            (0..BLOCK).map(move |i| {
                let j = i % (BLOCK / 2);
                let nibble = if i < BLOCK / 2 { qs[j] & 0x0F } else { qs[j] >> 4 };
                let hi = ((qh >> i) & 1) as u8;
                let x = nibble | (hi << 4);
                if with_min { f32::from(x) * d + m } else { (f32::from(x) - 16.0) * d }
            })
        })
        .collect()
}

/// How one tensor is stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit float (biases, norms, positional embeddings).
    F32,
    /// The model's weight type.
    Weight(WeightType),
}

/// Writes the header: magic, hyper-parameters, mel filters, vocabulary.
///
/// # Errors
/// I/O errors of `w`.
pub fn write_header(
    w: &mut impl Write,
    hp: &HParams,
    wtype: WeightType,
    filters: &[f32],
    vocab: &[Vec<u8>],
) -> io::Result<()> {
    w.write_all(&MAGIC.to_le_bytes())?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        wtype.file_type(),
    ] {
        w.write_all(&v.to_le_bytes())?;
    }
    let n_bins = (N_FFT / 2 + 1) as i32;
    w.write_all(&hp.n_mels.to_le_bytes())?;
    w.write_all(&n_bins.to_le_bytes())?;
    for f in filters {
        w.write_all(&f.to_le_bytes())?;
    }
    w.write_all(&i32::try_from(vocab.len()).map_err(io::Error::other)?.to_le_bytes())?;
    for token in vocab {
        w.write_all(&u32::try_from(token.len()).map_err(io::Error::other)?.to_le_bytes())?;
        w.write_all(token)?;
    }
    Ok(())
}

/// Writes one tensor. `shape` is in PyTorch order (outermost first); the
/// file lists it innermost first. Quantized types need rows that are a
/// multiple of 32 values, which holds for every whisper matrix.
///
/// # Errors
/// I/O errors of `w`; `InvalidInput` when a quantized row does not fill
/// whole blocks.
pub fn write_tensor(w: &mut impl Write, name: &str, shape: &[usize], ty: TensorType, data: &[f32]) -> io::Result<()> {
    let ggml_type = match ty {
        TensorType::F32 => 0,
        TensorType::Weight(t) => t.ggml_type(),
    };
    let inner = shape.last().copied().unwrap_or(1);
    if matches!(ty, TensorType::Weight(t) if t != WeightType::F16) && inner % BLOCK != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: rows of {inner} values")));
    }
    w.write_all(&i32::try_from(shape.len()).map_err(io::Error::other)?.to_le_bytes())?;
    w.write_all(&i32::try_from(name.len()).map_err(io::Error::other)?.to_le_bytes())?;
    w.write_all(&ggml_type.to_le_bytes())?;
    for &d in shape.iter().rev() {
        w.write_all(&i32::try_from(d).map_err(io::Error::other)?.to_le_bytes())?;
    }
    w.write_all(name.as_bytes())?;
    match ty {
        TensorType::F32 => {
            for v in data {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        TensorType::Weight(WeightType::F16) => {
            let bytes: Vec<u8> = data.iter().flat_map(|&v| f16_bits(v).to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        TensorType::Weight(WeightType::Q8_0) => w.write_all(&quantize_q8_0(data))?,
        TensorType::Weight(WeightType::Q5_0) => w.write_all(&quantize_q5_0(data))?,
        TensorType::Weight(WeightType::Q5_1) => w.write_all(&quantize_q5_1(data))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_are_slaney_triangles() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        let row = |m: usize| &f[m * 201..(m + 1) * 201];
        for m in 0..80 {
            let r = row(m);
            assert!(r.iter().all(|&v| v >= 0.0 && v.is_finite()));
            // Each triangle covers at least one bin and has one peak.
            let peak = r.iter().cloned().fold(0f32, f32::max);
            assert!(peak > 0.0, "band {m} is empty");
            let nonzero: Vec<usize> = (0..201).filter(|&b| r[b] > 0.0).collect();
            assert_eq!(nonzero.last().unwrap() - nonzero[0] + 1, nonzero.len(), "band {m} has a gap");
        }
        // Low bands are narrow (linear part of the scale), so Slaney's
        // area normalisation makes them taller than the high bands.
        let peak = |m: usize| row(m).iter().cloned().fold(0f32, f32::max);
        assert!(peak(1) > peak(79) * 5.0);
        // Reference values (librosa's algorithm in float64, as in faster-whisper's feature extractor).
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-7;
        assert!(close(row(0)[1], 0.024_862_593_984_176_087), "{}", row(0)[1]);
        assert!(close(row(1)[2], 0.022_871_772_096_078_016), "{}", row(1)[2]);
        assert!(close(peak(79), 0.003_164_711_739_176_461), "{}", peak(79));
        assert_eq!((0..201).find(|&b| row(40)[b] > 0.0), Some(42));
        assert!(close(row(40)[43], 0.014_735_565_741_439_09), "{}", row(40)[43]);
        assert_eq!(row(0)[0], 0.0);
        assert_eq!(mel_filters(128).len(), 128 * 201);
    }

    #[test]
    fn bpe_tokens_decode_to_bytes() {
        assert_eq!(decode_bpe_token("Ġhello").unwrap(), b" hello");
        assert_eq!(decode_bpe_token("Ċ").unwrap(), b"\n");
        assert_eq!(decode_bpe_token("!").unwrap(), b"!");
        // "é" in UTF-8 is C3 A9, shown as "Ã©".
        assert_eq!(decode_bpe_token("Ã©").unwrap(), "é".as_bytes());
        // The 68 unprintable bytes map to U+0100.. in order.
        assert_eq!(decode_bpe_token("\u{100}").unwrap(), [0u8]);
        assert_eq!(decode_bpe_token("\u{143}").unwrap(), [0xAD]);
        assert_eq!(decode_bpe_token(""), Some(vec![]));
        assert_eq!(decode_bpe_token("\u{4e2d}"), None);
        let table = byte_to_char();
        let mut chars: Vec<char> = table.to_vec();
        chars.sort_unstable();
        chars.dedup();
        assert_eq!(chars.len(), 256, "the alphabet is a bijection");
    }

    fn sample(n: usize) -> Vec<f32> {
        // Deterministic pseudo-random weights with an outlier per block.
        let mut x = 0x2545_f491_u32;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let v = (x as f32 / u32::MAX as f32 - 0.5) * 0.2;
                if i % 37 == 0 { v * 8.0 } else { v }
            })
            .collect()
    }

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let x = sample(32 * 64);
        let q = quantize_q8_0(&x);
        assert_eq!(q.len(), 64 * 34);
        let y = dequantize_q8_0(&q);
        for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
            let amax = bx.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a quantization step, plus the f16 rounding of the scale.
            let bound = amax / 127.0 * 0.5 + amax * 1e-3;
            for (a, b) in bx.iter().zip(by) {
                assert!((a - b).abs() <= bound, "{a} vs {b} (bound {bound})");
            }
        }
        assert!(dequantize_q8_0(&quantize_q8_0(&[0.0; 32])).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn q5_round_trips_within_a_step() {
        let x = sample(32 * 64);
        for with_min in [false, true] {
            let q = if with_min { quantize_q5_1(&x) } else { quantize_q5_0(&x) };
            assert_eq!(q.len(), 64 * if with_min { 24 } else { 22 });
            let y = dequantize_q5(&q, with_min);
            for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
                let amax = bx.iter().fold(0f32, |m, v| m.max(v.abs()));
                // q5_1 rounds to the nearest of 32 levels; q5_0's levels run
                // from -16 to 15 steps, so the far side of the largest value
                // can lose a whole step.
                let (step, slack) = if with_min { (2.0 * amax / 31.0, 0.51) } else { (amax / 16.0, 1.01) };
                for (a, b) in bx.iter().zip(by) {
                    assert!((a - b).abs() <= step * slack + amax * 2e-3, "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn tensors_list_dims_innermost_first() {
        let mut buf = Vec::new();
        write_tensor(&mut buf, "a.bias", &[3, 1], TensorType::F32, &[1.0, 2.0, 3.0]).unwrap();
        let ints: Vec<i32> = buf[..20].chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(ints, [2, 6, 0, 1, 3]);
        assert_eq!(&buf[20..26], b"a.bias");
        assert_eq!(buf.len(), 26 + 12);
        let err = write_tensor(&mut Vec::new(), "w", &[2, 7], TensorType::Weight(WeightType::Q8_0), &[0.0; 14]);
        assert!(err.is_err());
        assert_eq!(WeightType::Q8_0.file_type(), 2007);
        assert_eq!(WeightType::parse("Q8_0"), Some(WeightType::Q8_0));
    }
}
