//! Importing a faster-whisper (CTranslate2) model directory as a ggml model.
//!
//! A CTranslate2 `model.bin` (binary version 6) is a flat list of named
//! variables followed by aliases. Whisper's spec names them after
//! CTranslate2's layers; the importer maps each to the OpenAI name
//! whisper.cpp expects, splitting the fused attention projections and
//! dropping the all-zero key biases CTranslate2 added when fusing.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::ggml::{self, HParams, TensorType, WeightType};
use crate::error::{Error, Result};

/// One variable of a CTranslate2 model.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// CTranslate2's type id: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
    pub dtype: u8,
    /// Raw little-endian data.
    pub data: Vec<u8>,
}

impl Variable {
    /// The values as f32 (float types only).
    fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            0 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            4 => d.chunks_exact(2).map(|c| ggml::f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            5 => d.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect(),
            _ => return None,
        })
    }

    /// An integer scalar (int8/16/32).
    fn to_int(&self) -> Option<i64> {
        let d = &self.data;
        match (self.dtype, d.len()) {
            (1, 1) => Some(i64::from(d[0] as i8)),
            (2, 2) => Some(i64::from(i16::from_le_bytes([d[0], d[1]]))),
            (3, 4) => Some(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
            _ => None,
        }
    }
}

/// The variables of a CTranslate2 model, aliases resolved.
#[derive(Debug)]
pub struct Ct2Model {
    /// Spec name (`WhisperSpec`).
    pub spec: String,
    /// Spec revision.
    pub revision: u32,
    vars: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidModel { path: path.to_owned(), reason: reason.into() }
}

struct Reader<'a, R> {
    r: R,
    path: &'a Path,
}

impl<R: Read> Reader<'_, R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let got = (&mut self.r)
            .take(n as u64)
            .read_to_end(&mut buf)
            .map_err(|source| Error::Io { op: "reading a CTranslate2 model", source })?;
        if got != n {
            return Err(invalid(self.path, "model.bin is truncated"));
        }
        Ok(buf)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let mut b = self.bytes(n)?;
        if b.pop() != Some(0) {
            return Err(invalid(self.path, "a name in model.bin is not NUL-terminated"));
        }
        String::from_utf8(b).map_err(|_| invalid(self.path, "a name in model.bin is not UTF-8"))
    }
}

/// Bytes per element of CTranslate2's type ids.
fn dtype_size(dtype: u8) -> Option<usize> {
    match dtype {
        0 | 3 => Some(4),
        1 => Some(1),
        2 | 4 | 5 => Some(2),
        _ => None,
    }
}

impl Ct2Model {
    /// Reads `model.bin`.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`] when the file is missing;
    /// [`Error::InvalidModel`] when it is not a CTranslate2 model of a
    /// version we read (binary version 6).
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|_| Error::ModelNotFound {
            model: path.display().to_string(),
            hint: "no model.bin in the CTranslate2 model directory".into(),
        })?;
        let mut r = Reader { r: std::io::BufReader::new(file), path };
        let version = r.u32()?;
        if version != 6 {
            return Err(invalid(path, format!("CTranslate2 binary version {version}; only 6 is supported")));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let n = r.u32()?;
        let mut vars = HashMap::new();
        for _ in 0..n {
            let name = r.string()?;
            let rank = r.u8()?;
            let shape = (0..rank).map(|_| r.u32().map(|d| d as usize)).collect::<Result<Vec<_>>>()?;
            let dtype = r.u8()?;
            let n_bytes = r.u32()? as usize;
            let elem = dtype_size(dtype).ok_or_else(|| invalid(path, format!("{name}: unknown type id {dtype}")))?;
            if shape.iter().product::<usize>() * elem != n_bytes {
                return Err(invalid(path, format!("{name}: {n_bytes} bytes do not match its shape {shape:?}")));
            }
            let data = r.bytes(n_bytes)?;
            vars.insert(name, Variable { shape, dtype, data });
        }
        let n_aliases = r.u32()?;
        let mut aliases = HashMap::new();
        for _ in 0..n_aliases {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        Ok(Self { spec, revision, vars, aliases })
    }

    /// A variable by name, following aliases.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.vars.get(name).or_else(|| self.aliases.get(name).and_then(|t| self.vars.get(t)))
    }

    fn count_layers(&self, prefix: &str) -> usize {
        (0..).take_while(|i| self.vars.keys().any(|k| k.starts_with(&format!("{prefix}/layer_{i}/")))).count()
    }
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The ggml file.
    pub path: PathBuf,
    /// Its hyper-parameters.
    pub hparams: HParams,
    /// Its weight type.
    pub weight_type: WeightType,
    /// Tensors written.
    pub tensors: usize,
    /// Text tokens in its vocabulary.
    pub vocab: usize,
}

/// Reads the text tokens of `vocabulary.txt` (one per line) or
/// `vocabulary.json` (an array), as raw bytes: every token before
/// `<|endoftext|>`, byte-level BPE decoded. Blank lines are tokens too (the
/// multilingual vocabulary has an empty one).
///
/// # Errors
/// [`Error::InvalidModel`] when there is no vocabulary or a token is not
/// byte-level BPE.
pub fn read_vocabulary(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let txt = dir.join("vocabulary.txt");
    let tokens: Vec<String> = if txt.exists() {
        let text =
            std::fs::read_to_string(&txt).map_err(|source| Error::Io { op: "reading vocabulary.txt", source })?;
        let mut lines: Vec<String> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned()).collect();
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    } else {
        let json = dir.join("vocabulary.json");
        let text = std::fs::read_to_string(&json).map_err(|_| invalid(dir, "no vocabulary.txt or vocabulary.json"))?;
        serde_json::from_str(&text).map_err(|e| invalid(&json, e.to_string()))?
    };
    let end = tokens
        .iter()
        .position(|t| t == "<|endoftext|>")
        .ok_or_else(|| invalid(dir, "the vocabulary has no <|endoftext|> token"))?;
    tokens[..end]
        .iter()
        .map(|t| ggml::decode_bpe_token(t).ok_or_else(|| invalid(dir, format!("token {t:?} is not byte-level BPE"))))
        .collect()
}

/// Receives output tensors: OpenAI name, PyTorch shape, storage, values.
type Sink<'a> = dyn FnMut(String, Vec<usize>, TensorType, Vec<f32>) -> Result<()> + 'a;

/// Imports the CTranslate2 Whisper model in `dir` (`model.bin`,
/// `vocabulary.txt`) and writes a ggml model to `out`, atomically (a
/// temporary file renamed into place).
///
/// # Errors
/// [`Error::ModelNotFound`] when `dir` has no `model.bin`;
/// [`Error::InvalidModel`] for a model that is not a CTranslate2 Whisper
/// model with float weights; [`Error::Io`] writing `out`.
pub fn import_ct2(dir: &Path, out: &Path, weight_type: WeightType) -> Result<ImportReport> {
    let model_path = dir.join("model.bin");
    let m = Ct2Model::read(&model_path)?;
    if m.spec != "WhisperSpec" {
        return Err(invalid(&model_path, format!("a {} model, not Whisper", m.spec)));
    }
    let vocab = read_vocabulary(dir)?;
    let p = &model_path;

    let var = |name: &str| m.get(name).ok_or_else(|| invalid(p, format!("{name} is missing")));
    let floats = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let v = var(name)?;
        // int8-quantized CTranslate2 weights come with a per-row scale.
        if v.dtype == 1 && v.shape.len() == 2 {
            let scale = var(&name.replace("/weight", "/weight_scale"))?
                .to_f32()
                .ok_or_else(|| invalid(p, format!("{name}: scale is not float")))?;
            let cols = v.shape[1];
            let data = v.data.iter().enumerate().map(|(i, &q)| f32::from(q as i8) / scale[i / cols]).collect();
            return Ok((v.shape.clone(), data));
        }
        let data = v.to_f32().ok_or_else(|| invalid(p, format!("{name}: type id {} is not a float", v.dtype)))?;
        Ok((v.shape.clone(), data))
    };
    let int = |name: &str| -> Result<i32> {
        var(name)?
            .to_int()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| invalid(p, format!("{name} is not an integer")))
    };

    let emb_shape = var("decoder/embeddings/weight")?.shape.clone();
    let conv1 = var("encoder/conv1/weight")?.shape.clone();
    let enc_pos = var("encoder/position_encodings/encodings")?.shape.clone();
    let dec_pos = var("decoder/position_encodings/encodings")?.shape.clone();
    if emb_shape.len() != 2 || conv1.len() != 3 || enc_pos.len() != 2 || dec_pos.len() != 2 {
        return Err(invalid(p, "unexpected tensor ranks"));
    }
    let to_i32 = |v: usize| i32::try_from(v).map_err(|_| invalid(p, "a dimension is too large"));
    let d = enc_pos[1];
    let hparams = HParams {
        n_vocab: to_i32(emb_shape[0])?,
        n_audio_ctx: to_i32(enc_pos[0])?,
        n_audio_state: to_i32(d)?,
        n_audio_head: int("encoder/num_heads")?,
        n_audio_layer: to_i32(m.count_layers("encoder"))?,
        n_text_ctx: to_i32(dec_pos[0])?,
        n_text_state: to_i32(dec_pos[1])?,
        n_text_head: int("decoder/num_heads")?,
        n_text_layer: to_i32(m.count_layers("decoder"))?,
        n_mels: to_i32(conv1[1])?,
    };
    if hparams.n_text_state != hparams.n_audio_state || emb_shape[1] != d || hparams.n_audio_layer == 0 {
        return Err(invalid(p, "encoder and decoder widths differ, or there are no layers"));
    }
    let n_mels = conv1[1];

    let w = TensorType::Weight(weight_type);
    // Tensors are written as they are converted, so memory holds the
    // CTranslate2 weights plus one tensor, not a second copy of the model.
    let filters = ggml::mel_filters(n_mels);
    let io = |source| Error::Io { op: "writing the ggml model", source };
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
    let mut wr = BufWriter::with_capacity(1 << 20, tmp.as_file());
    ggml::write_header(&mut wr, &hparams, weight_type, &filters, &vocab).map_err(io)?;
    let mut written = 0usize;
    let mut push = |name: String, shape: Vec<usize>, ty: TensorType, data: Vec<f32>| -> Result<()> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(invalid(p, format!("{name}: {} values for shape {shape:?}", data.len())));
        }
        ggml::write_tensor(&mut wr, &name, &shape, ty, &data).map_err(io)?;
        written += 1;
        Ok(())
    };
    // A plain linear layer: matrix in the weight type, bias f32.
    let linear = |push: &mut Sink<'_>, src: &str, dst: &str| -> Result<()> {
        let (shape, data) = floats(&format!("{src}/weight"))?;
        push(format!("{dst}.weight"), shape, w, data)?;
        let (shape, data) = floats(&format!("{src}/bias"))?;
        push(format!("{dst}.bias"), shape, TensorType::F32, data)
    };
    let norm = |push: &mut Sink<'_>, src: &str, dst: &str| -> Result<()> {
        let (shape, data) = floats(&format!("{src}/gamma"))?;
        push(format!("{dst}.weight"), shape, TensorType::F32, data)?;
        let (shape, data) = floats(&format!("{src}/beta"))?;
        push(format!("{dst}.bias"), shape, TensorType::F32, data)
    };
    // A fused projection split by rows into `parts` (each `d` rows). A
    // part named `key` has no bias in the OpenAI layout; CTranslate2 filled
    // it with zeros, which we check and drop.
    let split = |push: &mut Sink<'_>, src: &str, parts: &[&str]| -> Result<()> {
        let (shape, weight) = floats(&format!("{src}/weight"))?;
        let (_, bias) = floats(&format!("{src}/bias"))?;
        if shape.len() != 2 || shape[0] != parts.len() * d || shape[1] != d || bias.len() != parts.len() * d {
            return Err(invalid(p, format!("{src}: shape {shape:?} is not {} × [{d}, {d}]", parts.len())));
        }
        for (i, part) in parts.iter().enumerate() {
            push(format!("{part}.weight"), vec![d, d], w, weight[i * d * d..(i + 1) * d * d].to_vec())?;
            let b = &bias[i * d..(i + 1) * d];
            if part.ends_with(".key") {
                if b.iter().any(|&v| v != 0.0) {
                    return Err(invalid(p, format!("{src}: the key bias is not zero")));
                }
            } else {
                push(format!("{part}.bias"), vec![d], TensorType::F32, b.to_vec())?;
            }
        }
        Ok(())
    };

    // The two parts every encoder and decoder block has: self-attention
    // (its layer norm, the fused query/key/value projection, the output
    // projection) and the feed-forward network (layer norm, two layers).
    let self_attention = |push: &mut Sink<'_>, src: &str, dst: &str| -> Result<()> {
        norm(push, &format!("{src}/self_attention/layer_norm"), &format!("{dst}.attn_ln"))?;
        split(
            push,
            &format!("{src}/self_attention/linear_0"),
            &[&format!("{dst}.attn.query"), &format!("{dst}.attn.key"), &format!("{dst}.attn.value")],
        )?;
        linear(push, &format!("{src}/self_attention/linear_1"), &format!("{dst}.attn.out"))
    };
    let feed_forward = |push: &mut Sink<'_>, src: &str, dst: &str| -> Result<()> {
        norm(push, &format!("{src}/ffn/layer_norm"), &format!("{dst}.mlp_ln"))?;
        linear(push, &format!("{src}/ffn/linear_0"), &format!("{dst}.mlp.0"))?;
        linear(push, &format!("{src}/ffn/linear_1"), &format!("{dst}.mlp.2"))
    };

    // Encoder.
    let (_, pe) = floats("encoder/position_encodings/encodings")?;
    push("encoder.positional_embedding".into(), enc_pos.clone(), TensorType::F32, pe)?;
    for conv in ["conv1", "conv2"] {
        let (shape, data) = floats(&format!("encoder/{conv}/weight"))?;
        // whisper.cpp's convolution needs f16 kernels whatever the weight type.
        push(format!("encoder.{conv}.weight"), shape, TensorType::Weight(WeightType::F16), data)?;
        let (_, data) = floats(&format!("encoder/{conv}/bias"))?;
        push(format!("encoder.{conv}.bias"), vec![d, 1], TensorType::F32, data)?;
    }
    norm(&mut push, "encoder/layer_norm", "encoder.ln_post")?;
    for i in 0..hparams.n_audio_layer {
        let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        self_attention(&mut push, &src, &dst)?;
        feed_forward(&mut push, &src, &dst)?;
    }

    // Decoder. The token embedding doubles as the output projection.
    let (_, pe) = floats("decoder/position_encodings/encodings")?;
    push("decoder.positional_embedding".into(), dec_pos.clone(), TensorType::F32, pe)?;
    let (shape, data) = floats("decoder/embeddings/weight")?;
    push("decoder.token_embedding.weight".into(), shape, w, data)?;
    norm(&mut push, "decoder/layer_norm", "decoder.ln")?;
    for i in 0..hparams.n_text_layer {
        let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        self_attention(&mut push, &src, &dst)?;
        norm(&mut push, &format!("{src}/attention/layer_norm"), &format!("{dst}.cross_attn_ln"))?;
        linear(&mut push, &format!("{src}/attention/linear_0"), &format!("{dst}.cross_attn.query"))?;
        split(
            &mut push,
            &format!("{src}/attention/linear_1"),
            &[&format!("{dst}.cross_attn.key"), &format!("{dst}.cross_attn.value")],
        )?;
        linear(&mut push, &format!("{src}/attention/linear_2"), &format!("{dst}.cross_attn.out"))?;
        feed_forward(&mut push, &src, &dst)?;
    }

    wr.flush().map_err(io)?;
    drop(wr);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    tracing::info!(out = %out.display(), ?weight_type, tensors = written, "imported a CTranslate2 model");
    Ok(ImportReport { path: out.to_owned(), hparams, weight_type, tensors: written, vocab: vocab.len() })
}

/// Alignment heads from a faster-whisper `config.json` (`alignment_heads`:
/// `[[layer, head], …]`), if present.
#[must_use]
pub fn alignment_heads(dir: &Path) -> Option<Vec<(i32, i32)>> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("alignment_heads")?
        .as_array()?
        .iter()
        .map(|pair| {
            let pair = pair.as_array()?;
            Some((i32::try_from(pair.first()?.as_i64()?).ok()?, i32::try_from(pair.get(1)?.as_i64()?).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_string(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&u16::try_from(s.len() + 1).unwrap().to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
        buf.push(0);
    }

    #[test]
    fn reads_variables_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        write_string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        write_string(&mut b, "decoder/embeddings/weight");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&ggml::f16_bits(1.5).to_le_bytes());
        b.extend_from_slice(&ggml::f16_bits(-2.0).to_le_bytes());
        write_string(&mut b, "decoder/num_heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&6i16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        write_string(&mut b, "decoder/projection/weight");
        write_string(&mut b, "decoder/embeddings/weight");
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &b).unwrap();
        let m = Ct2Model::read(&path).unwrap();
        assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
        assert_eq!(m.get("decoder/projection/weight").unwrap().to_f32().unwrap(), [1.5, -2.0]);
        assert_eq!(m.get("decoder/num_heads").unwrap().to_int(), Some(6));
        // Truncated or foreign files are typed errors, not panics.
        std::fs::write(&path, &b[..b.len() - 7]).unwrap();
        assert!(matches!(Ct2Model::read(&path), Err(Error::InvalidModel { .. })));
        std::fs::write(&path, b"GGUF\0\0\0\0").unwrap();
        assert!(matches!(Ct2Model::read(&path), Err(Error::InvalidModel { .. })));
        assert!(matches!(Ct2Model::read(&dir.path().join("nope.bin")), Err(Error::ModelNotFound { .. })));
    }

    #[test]
    fn vocabulary_stops_at_end_of_text_and_keeps_blank_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vocabulary.txt"), "!\nĠthe\n\nÃ©\n<|endoftext|>\n<|startoftranscript|>\n")
            .unwrap();
        let v = read_vocabulary(dir.path()).unwrap();
        assert_eq!(v, vec![b"!".to_vec(), b" the".to_vec(), vec![], "é".as_bytes().to_vec()]);
        std::fs::write(dir.path().join("config.json"), r#"{"alignment_heads": [[1, 0], [2, 5]]}"#).unwrap();
        assert_eq!(alignment_heads(dir.path()), Some(vec![(1, 0), (2, 5)]));
    }
}
