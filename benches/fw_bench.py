"""Times faster-whisper on audio files, for benches/benches/transcribe.rs.

    python fw_bench.py MODEL_DIR THREADS WORD_TIMESTAMPS(0|1) FILE...

Loads the model once (not timed), then transcribes each file (decoding
included, as the Rust side does) and prints one JSON line per file:
{"file": ..., "seconds": ..., "text": ...}.
"""
import json
import sys
import time

from faster_whisper import WhisperModel


def main():
    model_dir, threads, words, *files = sys.argv[1:]
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=int(threads))
    for f in files:
        start = time.perf_counter()
        segments, _ = model.transcribe(f, beam_size=1, language="en", word_timestamps=words == "1")
        text = " ".join(s.text.strip() for s in segments)  # the generator does the work
        print(json.dumps({"file": f, "seconds": time.perf_counter() - start, "text": text}), flush=True)


if __name__ == "__main__":
    main()
