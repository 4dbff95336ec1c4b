//! Test support, in one place for this crate's tests, the other crates'
//! tests, the benches and the demo:
//!
//! - generated speech (`talks`): talks from `espeak-ng`, one sentence at a
//!   time with known silent gaps, over a moving test picture
//!   ([`make_talk`]); plain paragraphs read aloud into one WAV
//!   ([`paragraphs_wav`]);
//! - the `tiny.en` test model, imported once and cached
//!   ([`tiny_en_model`], [`tiny_en_test_model`]);
//! - word error rate ([`wer`], [`normalise`]);
//! - transcripts of given words, without a model ([`transcript_of`]);
//! - media files made with ffmpeg ([`generate`]), their samples
//!   ([`samples_of`]) and ffprobe's JSON of outputs ([`ffprobe_json`]);
//!   a file that holds more than it declares ([`understated_mka`]);
//! - decoded frames and where a colour is in them ([`Frame`]);
//! - videos of real faces (cropped from `rustface`'s group photograph)
//!   that move and take turns speaking ([`make_face_video`]).
//!
//! Needs `ffmpeg`, `ffprobe` and `espeak-ng`. Compiled for this crate's own
//! tests and with the `testing` feature.

mod faces;
mod frames;
mod media_files;
mod talks;
mod test_model;
mod transcripts;
mod wer;

pub use faces::{FaceVideo, FaceVideoSpec, PHOTO_FACES, Person, face_talk, make_face_video, rustface_dir};
pub use frames::{Frame, Rect, looks_like};
pub use media_files::{ffprobe_json, generate, media_seconds, samples_of, seconds_of, stream_of, understated_mka};
pub use talks::{
    FILLER, HOOK_STORY_PAYOFF, MID_THOUGHT, PLAIN_PARAGRAPHS, PRACTICE, SLEEP, SMALL_TALK, SpokenSentence, Talk,
    TalkSpec, WORDS_PER_MINUTE, alternating_voice, make_talk, paragraphs_wav, planted_talk, small_talk, speak,
    split_sentences,
};
pub use test_model::{tiny_en_ct2_dir, tiny_en_model, tiny_en_test_model};
pub use transcripts::transcript_of;
pub use wer::{normalise, wer, wer_of_prefix};
