// The videdit web app: a few pages over the API, routed in the browser.
import {
  api,
  ApiError,
  type AppConfig,
  type Connection,
  type Publication,
  type Recipe,
  type Short,
  type Transcript,
  type TranscriptWord,
  type Video,
  setTokenSource,
} from "./api";
import { hasSaved, type Progress, Upload } from "./upload";

// ---------------------------------------------------------------- helpers

type Child = Node | string | null | undefined | false;

/** `h("button", {onclick}, "text")`: an element with attributes and children. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "class") el.className = String(v);
    else if (k in el && typeof v !== "string") (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const main = () => document.getElementById("main")!;

function show(...nodes: Child[]): void {
  main().replaceChildren(...(nodes.filter(Boolean) as Node[]));
  main().focus({ preventScroll: true });
}

/** An error as the API said it: its message and code, never a blank page. */
function errorBox(e: unknown): HTMLElement {
  const err = e instanceof ApiError ? e : new ApiError(0, "error", String(e));
  return h("div", { class: "error", role: "alert" }, h("strong", {}, err.message), " ", h("code", {}, err.code));
}

function flash(e: unknown): void {
  const box = document.getElementById("flash")!;
  box.replaceChildren(errorBox(e));
  setTimeout(() => box.replaceChildren(), 10_000);
}

function fmtTime(s: number | undefined | null): string {
  if (s === undefined || s === null || !Number.isFinite(s)) return "–";
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return `${m}:${String(sec).padStart(2, "0")}`;
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${v.toFixed(1)} ${units[i]}`;
}

function badge(status: string, stage?: string | null): HTMLElement {
  return h("span", { class: `badge ${status}` }, stage && status === "processing" ? `${status}: ${stage}` : status);
}

function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href, onclick: (e: MouseEvent) => navigate(e, href) }, ...children);
}

function navigate(e: MouseEvent, href: string): void {
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(href);
}

function go(href: string): void {
  history.pushState(null, "", href);
  void route();
}

function confirmDialog(message: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-label": action },
      h("p", {}, message),
      h(
        "div",
        { class: "row" },
        h("button", { class: "danger", onclick: () => (dialog.close(), resolve(true)) }, action),
        h("button", { onclick: () => (dialog.close(), resolve(false)) }, "Keep"),
      ),
    );
    dialog.addEventListener("close", () => (dialog.remove(), resolve(false)));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- live events

/** A UUIDv7-shaped cursor for "now minus a little": events are ordered by their UUIDv7 ids. */
function cursorAt(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

let cursor = cursorAt(Date.now() - 5000);
let polling = false;
const listeners = new Set<(types: Set<string>, videoIds: Set<string>) => void>();

/** Follows the organisation's events (the events API) and tells the page what changed. */
async function pollEvents(): Promise<void> {
  if (polling) return;
  polling = true;
  for (;;) {
    try {
      const page = await api.events(cursor);
      cursor = page.nextCursor ?? cursor;
      if (page.items.length > 0) {
        const types = new Set(page.items.map((e) => e.type));
        const ids = new Set(
          page.items.map((e) => (e.data as { videoId?: string } | null)?.videoId).filter((x): x is string => !!x),
        );
        for (const l of listeners) l(types, ids);
        continue;
      }
    } catch {
      // Offline for a moment: try again.
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}

function onEvents(l: (types: Set<string>, videoIds: Set<string>) => void): void {
  listeners.clear();
  listeners.add(l);
}

// ---------------------------------------------------------------- videos

const uploads = new Map<string, { upload: Upload; row: HTMLElement }>();

function uploadRow(file: File): HTMLElement {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
  const text = h("span", { class: "muted" }, hasSaved(file) ? "resuming…" : "starting…");
  const cancel = h("button", { class: "danger" }, "Cancel");
  const row = h("li", { class: "upload" }, h("strong", {}, file.name), bar, text, cancel);
  const upload = new Upload(file, (p: Progress) => {
    bar.value = p.total ? p.sent / p.total : 0;
    const eta = Number.isFinite(p.eta) ? `${fmtTime(p.eta)} left` : "";
    text.textContent = `${fmtBytes(p.sent)} of ${fmtBytes(p.total)} · ${fmtBytes(p.speed)}/s ${eta}${p.resumed ? " · resumed" : ""}`;
  });
  cancel.addEventListener("click", async () => {
    await upload.cancel();
    uploads.delete(file.name);
    row.remove();
  });
  uploads.set(file.name, { upload, row });
  upload
    .run()
    .then(() => {
      uploads.delete(file.name);
      row.remove();
      void refreshVideos();
    })
    .catch((e: unknown) => {
      if (e instanceof DOMException && e.name === "AbortError") return;
      text.replaceChildren(errorBox(e), " Choose the same file again to resume.");
      uploads.delete(file.name);
    });
  return row;
}

function startUploads(files: FileList | File[]): void {
  const list = document.getElementById("uploads");
  for (const f of Array.from(files)) {
    if (uploads.has(f.name)) continue;
    list?.append(uploadRow(f));
  }
}

function dropZone(): HTMLElement {
  const input = h("input", {
    type: "file",
    id: "file",
    accept: "video/*,audio/*",
    multiple: true,
    onchange: () => input.files && (startUploads(input.files), (input.value = "")),
  });
  const zone = h(
    "label",
    { class: "drop", for: "file" },
    h("strong", {}, "Drop a video here"),
    h("span", {}, " or choose a file (video or audio; large files go up in parts and resume if the network drops)"),
    input,
  );
  zone.addEventListener("dragover", (e) => (e.preventDefault(), zone.classList.add("over")));
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer?.files) startUploads(e.dataTransfer.files);
  });
  return zone;
}

const thumbs = new Map<string, string>();

async function thumbnail(v: Video): Promise<string | undefined> {
  if (thumbs.has(v.id)) return thumbs.get(v.id);
  if (v.shortsCount === 0) return undefined;
  const shorts = await api.shorts(v.id).catch(() => []);
  const t = shorts.find((s) => s.thumbnailUrl)?.thumbnailUrl;
  if (t) thumbs.set(v.id, t);
  return t;
}

/** The running stage's progress (the job's `percent`), shown under a processing video. */
function stageProgress(v: Video): HTMLElement | null {
  if (v.status !== "processing") return null;
  const bar = h("progress", { max: 100, "aria-label": `${v.title}: ${v.stage ?? "processing"}` });
  void api
    .jobs(v.id)
    .then((jobs) => {
      const running = jobs.find((j) => j.status === "running");
      const percent = (running?.progress as { percent?: number } | undefined)?.percent;
      if (typeof percent === "number") bar.value = percent;
    })
    .catch(() => undefined);
  return bar;
}

function videoCard(v: Video): HTMLElement {
  const img = h("div", { class: "thumb", "aria-hidden": "true" });
  void thumbnail(v).then((t) => t && img.replaceChildren(h("img", { src: t, alt: "" })));
  const title = link(`/videos/${v.id}`, v.title);
  const rename = h("button", { class: "small", "aria-label": `Rename ${v.title}` }, "Rename");
  rename.addEventListener("click", () => {
    const input = h("input", { value: v.title, "aria-label": "New title", maxlength: 200 });
    const form = h(
      "form",
      {
        class: "row",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            await api.rename(v.id, input.value);
            await refreshVideos();
          } catch (err) {
            flash(err);
          }
        },
      },
      input,
      h("button", { type: "submit" }, "Save"),
    );
    title.replaceWith(form);
    input.focus();
  });
  const del = h("button", { class: "small danger", "aria-label": `Delete ${v.title}` }, "Delete");
  del.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete “${v.title}” and its shorts? This cannot be undone.`, "Delete"))) return;
    try {
      await api.deleteVideo(v.id);
      await refreshVideos();
    } catch (e) {
      flash(e);
    }
  });
  return h(
    "li",
    { class: "card video", "data-video": v.id, "data-status": v.status },
    img,
    h(
      "div",
      { class: "body" },
      h("h3", {}, title),
      h(
        "p",
        { class: "meta" },
        badge(v.status, v.stage),
        ` · ${fmtTime(v.durationSeconds)} · ${v.shortsCount} shorts`,
      ),
      stageProgress(v),
      v.failureReason ? h("p", { class: "error-text" }, v.failureReason) : null,
      h("div", { class: "row" }, rename, del),
    ),
  );
}

async function refreshVideos(): Promise<void> {
  const list = document.getElementById("videos");
  if (!list) return;
  try {
    const page = await api.videos();
    list.replaceChildren(
      ...(page.items.length ? page.items.map(videoCard) : [h("li", { class: "muted" }, "No videos yet: upload one.")]),
    );
  } catch (e) {
    list.replaceChildren(errorBox(e));
  }
}

async function videosPage(): Promise<void> {
  const uploadsList = h("ul", { id: "uploads", class: "uploads", "aria-live": "polite" });
  for (const { row } of uploads.values()) uploadsList.append(row);
  show(
    h("h1", {}, "Videos"),
    dropZone(),
    uploadsList,
    h("ul", { id: "videos", class: "grid", "aria-live": "polite" }, h("li", { class: "muted" }, "Loading…")),
  );
  await refreshVideos();
  onEvents(() => void refreshVideos());
  // Stage progress is not an event: look again while something processes.
  const timer = setInterval(() => {
    if (!document.getElementById("videos")) return clearInterval(timer);
    if (document.querySelector('.card.video[data-status="processing"]')) void refreshVideos();
  }, 3000);
}

// ---------------------------------------------------------------- a video

function scoreBars(s: Short): HTMLElement {
  const subs = s.subScores as unknown as Record<string, number>;
  return h(
    "dl",
    { class: "scores" },
    ...Object.entries(subs).map(([k, v]) => [
      h("dt", {}, k),
      h("dd", {}, h("meter", { min: 0, max: 1, value: v, "aria-label": k }), ` ${Math.round(v * 100)}`),
    ]),
  );
}

function shortCard(s: Short): HTMLElement {
  const preview = s.videoUrl
    ? h("video", {
        src: s.videoUrl,
        poster: s.thumbnailUrl ?? undefined,
        controls: true,
        playsInline: true,
        preload: "metadata",
        "aria-label": `Short ${s.rank}: ${s.title}`,
      })
    : h("div", { class: "pending" }, badge(s.status));
  return h(
    "li",
    { class: "card short", "data-short": s.id, "data-status": s.status },
    h("div", { class: "frame" }, preview),
    h(
      "div",
      { class: "body" },
      h("h3", {}, `#${s.rank} ${s.title}`),
      h("p", { class: "meta" }, `score ${Math.round(s.score)} · ${fmtTime(s.startSeconds)}–${fmtTime(s.endSeconds)} · `, badge(s.status)),
      h("p", {}, s.reason),
      scoreBars(s),
      h(
        "div",
        { class: "row" },
        link(`/shorts/${s.id}`, "Edit"),
        h("button", { class: "small", onclick: () => publishDialog(s) }, "Publish"),
        s.videoUrl ? h("a", { href: s.videoUrl, download: "" }, "Download") : null,
      ),
    ),
  );
}

function transcriptView(t: Transcript, player: HTMLVideoElement | null): HTMLElement {
  const words: HTMLElement[] = [];
  const body = h("p", { class: "transcript" });
  for (const seg of t.segments) {
    for (const w of seg.words) {
      const b = h(
        "button",
        {
          class: "word",
          title: fmtTime(w.start),
          onclick: () => {
            if (player) {
              player.currentTime = w.start;
              void player.play().catch(() => undefined);
            }
          },
        },
        w.text,
      );
      words.push(b);
      body.append(b, " ");
    }
  }
  const search = h("input", {
    type: "search",
    placeholder: "Search the transcript",
    "aria-label": "Search the transcript",
    oninput: () => {
      const q = search.value.trim().toLowerCase();
      let first: HTMLElement | undefined;
      for (const w of words) {
        const hit = q.length > 0 && (w.textContent ?? "").toLowerCase().includes(q);
        w.classList.toggle("hit", hit);
        if (hit && !first) first = w;
      }
      first?.scrollIntoView({ block: "nearest" });
    },
  });
  return h("section", { "aria-label": "Transcript" }, h("h2", {}, "Transcript"), search, body);
}

function reanalyseForm(v: Video): HTMLElement {
  const count = h("input", { type: "number", min: 1, max: 20, value: 5, id: "ra-count" });
  const min = h("input", { type: "number", min: 5, max: 180, value: 20, id: "ra-min" });
  const max = h("input", { type: "number", min: 5, max: 180, value: 60, id: "ra-max" });
  const kw = h("input", { type: "text", id: "ra-kw", placeholder: "money, habits" });
  const out = h("p", { "aria-live": "polite" });
  return h(
    "form",
    {
      class: "panel",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          await api.analyze(v.id, {
            maxShorts: Number(count.value),
            minDuration: Number(min.value),
            maxDuration: Number(max.value),
            keywords: kw.value.split(",").map((s) => s.trim()).filter(Boolean),
          });
          out.textContent = "Analysing again: the shorts below are replaced when it ends.";
        } catch (err) {
          out.replaceChildren(errorBox(err));
        }
      },
    },
    h("h2", {}, "Find other shorts"),
    h("div", { class: "fields" },
      h("label", { for: "ra-count" }, "How many"), count,
      h("label", { for: "ra-min" }, "Shortest (s)"), min,
      h("label", { for: "ra-max" }, "Longest (s)"), max,
      h("label", { for: "ra-kw" }, "Keywords"), kw,
    ),
    h("button", { type: "submit" }, "Analyse again"),
    out,
  );
}

async function videoPage(id: string): Promise<void> {
  show(h("p", { class: "muted" }, "Loading…"));
  const render = async () => {
    const [v, shorts] = await Promise.all([api.video(id), api.shorts(id)]);
    const transcript = v.hasTranscription ? await api.transcript(id).catch(() => null) : null;
    const player = v.sourceUrl
      ? h("video", { src: v.sourceUrl, controls: true, preload: "metadata", class: "source", "aria-label": "The source video" })
      : null;
    show(
      h("p", {}, link("/", "← Videos")),
      h("h1", {}, v.title),
      h("p", { class: "meta" }, badge(v.status, v.stage), ` · ${fmtTime(v.durationSeconds)} · ${v.shortsCount} shorts`),
      v.failureReason ? h("div", { class: "error", role: "alert" }, v.failureReason) : null,
      h("h2", {}, "Shorts, best first"),
      h("ul", { class: "grid shorts" }, ...(shorts.length ? shorts.map(shortCard) : [h("li", { class: "muted" }, "No shorts yet.")])),
      h("div", { class: "columns" }, player, transcript ? transcriptView(transcript, player) : null),
      v.status === "ready" ? reanalyseForm(v) : null,
    );
  };
  try {
    await render();
  } catch (e) {
    show(h("p", {}, link("/", "← Videos")), errorBox(e));
    return;
  }
  onEvents((_types, ids) => {
    if (ids.has(id)) render().catch(flash);
  });
}

// ---------------------------------------------------------------- the short editor

function nearest(times: number[], t: number): number {
  let best = t;
  let d = Infinity;
  for (const x of times) if (Math.abs(x - t) < d) (d = Math.abs(x - t)), (best = x);
  return best;
}

async function waveform(url: string): Promise<Float32Array | null> {
  try {
    const buf = await (await fetch(url)).arrayBuffer();
    const ctx = new OfflineAudioContext(1, 1, 44100);
    const audio = await ctx.decodeAudioData(buf);
    return audio.getChannelData(0);
  } catch {
    return null;
  }
}

async function shortPage(id: string): Promise<void> {
  show(h("p", { class: "muted" }, "Loading…"));
  let short: Short;
  let recipe: Recipe;
  let transcript: Transcript | null;
  try {
    short = await api.short(id);
    [recipe, transcript] = await Promise.all([api.recipe(id), api.transcript(short.videoId).catch(() => null)]);
  } catch (e) {
    show(errorBox(e));
    return;
  }
  const words: TranscriptWord[] = transcript ? transcript.segments.flatMap((s) => s.words) : [];
  const duration = transcript?.duration ?? recipe.endSeconds + 30;
  const starts = words.map((w) => w.start);
  const ends = words.map((w) => w.end);
  const view = { from: Math.max(0, recipe.startSeconds - 20), to: Math.min(duration, recipe.endSeconds + 20) };
  let peaks: Float32Array | null = null;

  const startInput = h("input", { type: "number", step: 0.01, min: 0, max: duration, value: recipe.startSeconds.toFixed(2), id: "trim-start" });
  const endInput = h("input", { type: "number", step: 0.01, min: 0, max: duration, value: recipe.endSeconds.toFixed(2), id: "trim-end" });
  const canvas = h("canvas", { width: 1000, height: 120, class: "timeline", role: "img", "aria-label": "Timeline with the waveform and the words" });
  const wordsBox = h("div", { class: "words" });
  const status = h("p", { "aria-live": "polite", id: "render-status" }, badge(short.status));
  const preview = h("video", { src: short.videoUrl ?? undefined, poster: short.thumbnailUrl ?? undefined, controls: true, playsInline: true, class: "preview", "aria-label": "Preview" });

  const draw = () => {
    const c = canvas.getContext("2d");
    if (!c) return;
    const W = canvas.width;
    const H = canvas.height;
    const x = (t: number) => ((t - view.from) / (view.to - view.from)) * W;
    c.clearRect(0, 0, W, H);
    c.fillStyle = "#1d2733";
    c.fillRect(0, 0, W, H);
    const s = Number(startInput.value);
    const e = Number(endInput.value);
    c.fillStyle = "rgba(77, 163, 255, 0.25)";
    c.fillRect(x(s), 0, x(e) - x(s), H);
    if (peaks) {
      // The rendered short's sound, drawn over the range it was cut from.
      c.strokeStyle = "#9fd3ff";
      const a = x(recipe.startSeconds);
      const b = x(recipe.endSeconds);
      const step = Math.max(1, Math.floor(peaks.length / Math.max(1, b - a)));
      for (let i = 0; i < b - a; i++) {
        let m = 0;
        for (let j = i * step; j < (i + 1) * step && j < peaks.length; j++) m = Math.max(m, Math.abs(peaks[j]!));
        c.beginPath();
        c.moveTo(a + i, H / 2 - m * (H / 2 - 20));
        c.lineTo(a + i, H / 2 + m * (H / 2 - 20));
        c.stroke();
      }
    }
    c.fillStyle = "#e8eef5";
    c.font = "11px sans-serif";
    for (const w of words) {
      if (w.end < view.from || w.start > view.to) continue;
      c.fillRect(x(w.start), H - 14, Math.max(1, x(w.end) - x(w.start)), 4);
    }
    c.fillStyle = "#ffcc4d";
    c.fillRect(x(s) - 2, 0, 4, H);
    c.fillRect(x(e) - 2, 0, 4, H);
  };
  const snapStart = () => (startInput.value = (starts.length ? nearest(starts, Number(startInput.value)) : Number(startInput.value)).toFixed(2));
  const snapEnd = () => (endInput.value = (ends.length ? nearest(ends, Number(endInput.value)) : Number(endInput.value)).toFixed(2));
  startInput.addEventListener("change", () => (snapStart(), draw()));
  endInput.addEventListener("change", () => (snapEnd(), draw()));
  // Dragging a handle on the timeline, snapping to word boundaries.
  let dragging: "start" | "end" | null = null;
  const timeAt = (ev: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    return view.from + ((ev.clientX - r.left) / r.width) * (view.to - view.from);
  };
  canvas.addEventListener("pointerdown", (ev) => {
    const t = timeAt(ev);
    dragging = Math.abs(t - Number(startInput.value)) < Math.abs(t - Number(endInput.value)) ? "start" : "end";
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!dragging) return;
    const t = timeAt(ev);
    if (dragging === "start") startInput.value = nearest(starts.length ? starts : [t], t).toFixed(2);
    else endInput.value = nearest(ends.length ? ends : [t], t).toFixed(2);
    draw();
  });
  canvas.addEventListener("pointerup", () => (dragging = null));

  const wordInputs = recipe.words.map((w, i) =>
    h("input", { value: w.text, "aria-label": `Caption word ${i + 1} at ${fmtTime(w.start)}`, class: "word-input", size: Math.max(2, w.text.length) }),
  );
  wordsBox.append(...wordInputs);
  const style = h("select", { id: "caption-style" }, ...["bold", "highlight", "boxed", "none"].map((s) => h("option", { value: s, selected: s === recipe.captionStyle }, s)));
  const aspect = h("select", { id: "aspect" }, ...["9:16", "1:1", "4:5", "16:9"].map((s) => h("option", { value: s, selected: s === recipe.aspect }, s)));
  // auto: faces decide (a split screen for two speakers, a crop following the face, or fit).
  const reframe = h("select", { id: "reframe" }, ...["auto", "track", "split", "fit", "crop"].map((s) => h("option", { value: s, selected: s === recipe.reframe.mode }, s)));
  const titleInput = h("input", { id: "short-title", value: recipe.title, maxlength: 200 });

  const save = h("button", { type: "submit" }, "Save and render");
  const form = h(
    "form",
    {
      class: "editor",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const s = Number(startInput.value);
        const end = Number(endInput.value);
        // Words inside the new range: the recipe's (as edited here), and the
        // transcript's beyond the old range when the range grew.
        const kept = recipe.words.map((w, i) => ({ ...w, text: wordInputs[i]!.value }));
        const grown = words.filter((w) => w.end <= recipe.startSeconds + 0.001 || w.start >= recipe.endSeconds - 0.001);
        const inRange = [...kept, ...grown]
          .filter((w) => w.start >= s - 0.001 && w.end <= end + 0.001)
          .sort((a, b) => a.start - b.start);
        const next: Recipe = {
          ...recipe,
          startSeconds: s,
          endSeconds: end,
          captionStyle: style.value as Recipe["captionStyle"],
          aspect: aspect.value as Recipe["aspect"],
          // The same mode keeps its camera path; another mode starts afresh
          // (a path is found again when it renders).
          reframe: reframe.value === recipe.reframe.mode ? recipe.reframe : ({ mode: reframe.value } as Recipe["reframe"]),
          title: titleInput.value,
          words: inRange.map((w) => ({ start: w.start, end: w.end, text: w.text })),
        };
        save.disabled = true;
        try {
          recipe = await api.putRecipe(id, next);
          status.replaceChildren(badge("pending"), " rendering…");
          await followRender();
        } catch (err) {
          status.replaceChildren(errorBox(err));
        } finally {
          save.disabled = false;
        }
      },
    },
    h("div", { class: "fields" },
      h("label", { for: "short-title" }, "Title"), titleInput,
      h("label", { for: "trim-start" }, "Start (s)"), startInput,
      h("label", { for: "trim-end" }, "End (s)"), endInput,
      h("label", { for: "caption-style" }, "Caption style"), style,
      h("label", { for: "aspect" }, "Aspect"), aspect,
      h("label", { for: "reframe" }, "Reframe"), reframe,
    ),
    canvas,
    h("h2", {}, "Caption words"),
    h("p", { class: "muted" }, "Fix a word in place; times stay as they are."),
    wordsBox,
    h("div", { class: "row" }, save, short.videoUrl ? h("a", { href: short.videoUrl, download: "" }, "Download") : null),
    status,
  );
  const followRender = async () => {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1500));
      short = await api.short(id);
      status.replaceChildren(badge(short.status));
      if (short.status === "ready" || short.status === "failed") break;
    }
    if (short.videoUrl) preview.src = short.videoUrl;
    status.replaceChildren(badge(short.status), short.status === "ready" ? " rendered" : " the render failed");
  };
  show(
    h("p", {}, link(`/videos/${short.videoId}`, "← The video")),
    h("h1", {}, `Edit: ${short.title}`),
    h("div", { class: "columns" }, h("div", { class: "frame" }, preview), form),
  );
  draw();
  if (short.videoUrl) void waveform(short.videoUrl).then((p) => ((peaks = p), draw()));
  onEvents(() => undefined);
}

// ---------------------------------------------------------------- publishing

const PRIVACIES: Record<string, string[]> = {
  youtube: ["public", "unlisted", "private"],
  tiktok: ["public", "friends", "followers", "private"],
  instagram: ["public"],
};

async function publishDialog(s: Short): Promise<void> {
  let connections: Connection[];
  try {
    connections = await api.connections();
  } catch (e) {
    flash(e);
    return;
  }
  const dialog = h("dialog", { "aria-label": "Publish" });
  if (connections.length === 0) {
    dialog.append(h("p", {}, "No connected accounts yet. "), link("/connections", "Connect one"), h("button", { onclick: () => dialog.close() }, "Close"));
  } else {
    const conn = h("select", { id: "pub-conn" }, ...connections.map((c) => h("option", { value: c.id }, `${c.platform}: ${c.accountName}`)));
    const privacy = h("select", { id: "pub-privacy" });
    const fill = () => {
      const c = connections.find((x) => x.id === conn.value);
      privacy.replaceChildren(...(PRIVACIES[c?.platform ?? "youtube"] ?? ["public"]).map((p) => h("option", { value: p }, p)));
    };
    conn.addEventListener("change", fill);
    fill();
    const title = h("input", { id: "pub-title", value: s.title, maxlength: 100 });
    const description = h("textarea", { id: "pub-desc", rows: 3 });
    const tags = h("input", { id: "pub-tags", placeholder: "talk, money" });
    const when = h("input", { id: "pub-when", type: "datetime-local" });
    const out = h("div", { "aria-live": "polite" });
    dialog.append(
      h(
        "form",
        {
          method: "dialog",
          onsubmit: async (e: Event) => {
            e.preventDefault();
            try {
              const p = await api.publish(s.id, {
                connectionId: conn.value,
                title: title.value,
                description: description.value,
                tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
                privacy: privacy.value,
                scheduledAt: when.value ? new Date(when.value).toISOString() : undefined,
                options: {},
              });
              const follow = link("/publications", "Follow it");
              follow.addEventListener("click", () => dialog.close());
              out.replaceChildren(h("p", {}, `Scheduled (${p.status}). `), follow);
            } catch (err) {
              out.replaceChildren(errorBox(err));
            }
          },
        },
        h("h2", {}, `Publish “${s.title}”`),
        h("div", { class: "fields" },
          h("label", { for: "pub-conn" }, "Account"), conn,
          h("label", { for: "pub-title" }, "Title"), title,
          h("label", { for: "pub-desc" }, "Description"), description,
          h("label", { for: "pub-tags" }, "Tags"), tags,
          h("label", { for: "pub-privacy" }, "Privacy"), privacy,
          h("label", { for: "pub-when" }, "When (empty: now)"), when,
        ),
        h("div", { class: "row" }, h("button", { type: "submit" }, "Publish"), h("button", { type: "button", onclick: () => dialog.close() }, "Close")),
        out,
      ),
    );
  }
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

async function connectionsPage(): Promise<void> {
  const list = h("ul", { class: "list" });
  const refresh = async () => {
    try {
      const cs = await api.connections();
      list.replaceChildren(
        ...(cs.length
          ? cs.map((c) =>
              h(
                "li",
                {},
                h("strong", {}, c.platform), ` ${c.accountName} `, badge(c.status), c.mode ? ` · ${c.mode}` : "",
                c.statusReason ? h("p", { class: "error-text" }, c.statusReason) : null,
                h("button", {
                  class: "small danger",
                  onclick: async () => {
                    if (!(await confirmDialog(`Disconnect ${c.accountName} (${c.platform})?`, "Disconnect"))) return;
                    await api.disconnect(c.id).catch(flash);
                    await refresh();
                  },
                }, "Disconnect"),
              ),
            )
          : [h("li", { class: "muted" }, "No accounts connected.")]),
      );
    } catch (e) {
      list.replaceChildren(errorBox(e));
    }
  };
  const connect = (platform: string, mode?: string) => async () => {
    try {
      location.href = (await api.authorize(platform, mode)).url;
    } catch (e) {
      flash(e);
    }
  };
  show(
    h("h1", {}, "Connected accounts"),
    list,
    h("h2", {}, "Connect"),
    h("div", { class: "row" },
      h("button", { onclick: connect("youtube") }, "YouTube"),
      h("button", { onclick: connect("tiktok", "direct") }, "TikTok (post directly)"),
      h("button", { onclick: connect("tiktok", "inbox") }, "TikTok (drafts to the inbox)"),
      h("button", { onclick: connect("instagram") }, "Instagram (business or creator)"),
    ),
  );
  await refresh();
}

async function callbackPage(platform: string): Promise<void> {
  const q = new URLSearchParams(location.search);
  const error = q.get("error_description") ?? q.get("error");
  if (error) {
    show(h("h1", {}, "Not connected"), h("div", { class: "error", role: "alert" }, error), link("/connections", "Back"));
    return;
  }
  show(h("p", { class: "muted" }, `Connecting ${platform}…`));
  try {
    const c = await api.callback(platform, (q.get("code") ?? "").replace(/#_$/, ""), q.get("state") ?? "");
    show(h("h1", {}, "Connected"), h("p", {}, `${c.platform}: ${c.accountName}`), link("/connections", "Connected accounts"));
  } catch (e) {
    show(h("h1", {}, "Not connected"), errorBox(e), link("/connections", "Back"));
  }
}

function publicationRow(p: Publication): HTMLElement {
  const progress =
    p.status === "uploading" && p.bytesTotal ? h("progress", { max: p.bytesTotal, value: p.bytesSent, "aria-label": "Upload to the platform" }) : null;
  return h(
    "tr",
    {},
    h("td", {}, p.platform),
    h("td", {}, p.title),
    h("td", {}, badge(p.status), progress, p.failureMessage ? h("div", { class: "error-text" }, `${p.failureCode}: ${p.failureMessage}`) : null),
    h("td", {}, p.scheduledAt ? new Date(p.scheduledAt).toLocaleString() : "now"),
    h("td", {}, p.url ? h("a", { href: p.url, rel: "noopener" }, "Open") : "–"),
    h("td", {}, p.status === "scheduled" ? h("button", { class: "small", onclick: async () => (await api.cancelPublication(p.id).catch(flash), void publicationsPage()) }, "Cancel") : null),
  );
}

async function publicationsPage(): Promise<void> {
  const body = h("tbody", {});
  const refresh = async () => {
    try {
      const ps = await api.publications();
      body.replaceChildren(...(ps.length ? ps.map(publicationRow) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Nothing published yet."))]));
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, errorBox(e))));
    }
  };
  show(
    h("h1", {}, "Publications"),
    h("table", {},
      h("thead", {}, h("tr", {}, ...["Platform", "Title", "Status", "When", "Link", ""].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
  );
  await refresh();
  onEvents((types) => [...types].some((t) => t.startsWith("publication.")) && void refresh());
}

async function billingPage(): Promise<void> {
  show(h("p", { class: "muted" }, "Loading…"));
  try {
    const b = await api.billing();
    const total = b.minutesRemaining === undefined ? Infinity : b.minutesUsed + b.minutesRemaining;
    const act = (f: () => Promise<{ url: string }>) => async () => {
      try {
        location.href = (await f()).url;
      } catch (e) {
        flash(e);
      }
    };
    show(
      h("h1", {}, "Billing"),
      h("p", {}, `Plan: ${b.plan.name} · ${b.standing}`),
      h("p", {}, h("label", { for: "usage" }, `Minutes used: ${b.minutesUsed.toFixed(1)} of ${Number.isFinite(total) ? total.toFixed(0) : "unlimited"} `),
        h("meter", { id: "usage", min: 0, max: Number.isFinite(total) && total > 0 ? total : 1, value: Number.isFinite(total) ? b.minutesUsed : 0 })),
      b.billingEnabled
        ? h("div", { class: "row" },
            ...b.plans.filter((p) => !p.free && p.id !== b.plan.id).map((p) => h("button", { onclick: act(() => api.checkout(p.id)) }, `Upgrade to ${p.name}`)),
            h("button", { onclick: act(api.portal) }, "Manage billing"),
          )
        : h("p", { class: "muted" }, "Billing is not configured on this server."),
    );
  } catch (e) {
    show(h("h1", {}, "Billing"), errorBox(e));
  }
}

async function brandPage(): Promise<void> {
  show(h("p", { class: "muted" }, "Loading…"));
  const picture = await api.audiogramBackground();
  const input = h("input", { type: "file", id: "background", accept: "image/png,image/jpeg" }) as HTMLInputElement;
  input.addEventListener("change", async () => {
    const file = input.files?.[0];
    if (!file) return;
    try {
      await api.setAudiogramBackground(file);
      await brandPage();
    } catch (e) {
      flash(e);
    } finally {
      input.value = ""; // choosing the same file again tries again
    }
  });
  const remove = async () => {
    try {
      await api.removeAudiogramBackground();
      await brandPage();
    } catch (e) {
      flash(e);
    }
  };
  show(
    h("h1", {}, "Brand"),
    h("h2", {}, "Audiogram background"),
    h("p", { class: "muted" }, "Shorts of audio-only podcasts are audiograms: this picture, blurred, behind the waveform and captions (in place of the file's cover art). PNG or JPEG, at most 8 MiB; 1080 × 1920 fills a vertical short."),
    picture
      ? h("figure", { class: "picture" },
          h("img", { class: "preview", src: picture.url, alt: "The audiogram background" }),
          h("figcaption", {}, `${picture.width} × ${picture.height} · ${picture.contentType} · ${(picture.sizeBytes / 1024).toFixed(0)} KiB`),
        )
      : h("p", { id: "no-background" }, "No picture set: audiograms show a file's cover art, or a plain colour."),
    h("div", { class: "row" },
      h("label", { for: "background" }, picture ? "Replace the picture " : "Choose a picture "),
      input,
      picture ? h("button", { onclick: remove }, "Remove") : null,
    ),
  );
}

// ---------------------------------------------------------------- routing and sign-in

async function route(): Promise<void> {
  const path = location.pathname;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const here = a.getAttribute("href") === "/" ? path === "/" || path.startsWith("/videos") || path.startsWith("/shorts") : path.startsWith(a.getAttribute("href")!);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let m: RegExpMatchArray | null;
  try {
    if ((m = path.match(/^\/videos\/([^/]+)$/))) await videoPage(m[1]!);
    else if ((m = path.match(/^\/shorts\/([^/]+)$/))) await shortPage(m[1]!);
    else if ((m = path.match(/^\/connections\/([a-z]+)\/callback$/))) await callbackPage(m[1]!);
    else if (path === "/connections") await connectionsPage();
    else if (path === "/publications") await publicationsPage();
    else if (path === "/billing") await billingPage();
    else if (path === "/brand") await brandPage();
    else await videosPage();
  } catch (e) {
    show(errorBox(e));
  }
}

interface ClerkLike {
  load(): Promise<void>;
  user: unknown;
  session: { getToken(): Promise<string | null> } | null;
  mountSignIn(el: HTMLElement): void;
  mountUserButton(el: HTMLElement): void;
  mountOrganizationSwitcher(el: HTMLElement, props?: unknown): void;
  addListener(f: () => void): void;
}

async function signInWithClerk(key: string): Promise<boolean> {
  // The publishable key names the instance's frontend API (base64 after `pk_live_` / `pk_test_`).
  const frontend = atob(key.split("_")[2] ?? "").replace(/\$$/, "");
  await new Promise<void>((resolve, reject) => {
    const s = h("script", { src: `https://${frontend}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`, "data-clerk-publishable-key": key, crossorigin: "anonymous" });
    s.addEventListener("load", () => resolve());
    s.addEventListener("error", () => reject(new ApiError(0, "auth_unavailable", "Clerk's sign-in could not be loaded.")));
    document.head.append(s);
  });
  const clerk = (window as unknown as { Clerk: ClerkLike }).Clerk;
  await clerk.load();
  if (!clerk.user) {
    show(h("h1", {}, "Sign in"), h("div", { id: "sign-in" }));
    clerk.mountSignIn(document.getElementById("sign-in")!);
    return false;
  }
  setTokenSource(async () => (await clerk.session?.getToken()) ?? "");
  const slot = document.getElementById("account")!;
  const orgs = h("div", {});
  const user = h("div", {});
  slot.replaceChildren(orgs, user);
  clerk.mountOrganizationSwitcher(orgs, { hidePersonal: false, afterSelectOrganizationUrl: "/" });
  clerk.mountUserButton(user);
  let last = clerk.session;
  clerk.addListener(() => {
    if (clerk.session !== last) (last = clerk.session), void route();
  });
  return true;
}

async function start(): Promise<void> {
  window.addEventListener("popstate", () => void route());
  let config: AppConfig;
  try {
    config = (await (await fetch("/app-config.json")).json()) as AppConfig;
  } catch (e) {
    show(errorBox(e));
    return;
  }
  if (config.authMode === "clerk") {
    if (!config.clerkPublishableKey) {
      show(h("div", { class: "error", role: "alert" }, "Sign-in is not configured: set CLERK_PUBLISHABLE_KEY on the server."));
      return;
    }
    try {
      if (!(await signInWithClerk(config.clerkPublishableKey))) return;
    } catch (e) {
      show(errorBox(e));
      return;
    }
  } else {
    document.getElementById("account")!.replaceChildren(h("span", { class: "muted", title: "AUTH_MODE=insecure-dev" }, "dev user (local)"));
  }
  await route();
  void pollEvents();
}

void start();
