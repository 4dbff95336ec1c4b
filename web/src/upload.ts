// Uploads straight to storage through the presigned URLs the API gives:
// several parts at once, progress with speed and time left, resumable
// after a dropped network or a page reload (the plan and the finished
// parts' ETags are kept in localStorage, so finished parts are not sent
// again), and cancel. The file is sliced, never read into memory whole.
import { api, ApiError, call, type UploadPlan, type Video } from "./api";

export interface Progress {
  sent: number;
  total: number;
  /** Bytes per second, over the last few seconds. */
  speed: number;
  /** Seconds left at that speed (Infinity before it is known). */
  eta: number;
  resumed: boolean;
}

interface Saved {
  plan: UploadPlan;
  etags: Record<string, string>;
}

const PARALLEL = 3;
const PART_RETRIES = 4;

function key(file: File): string {
  return `videdit.upload:${file.name}:${file.size}:${file.lastModified}`;
}

function load(file: File): Saved | null {
  try {
    const raw = localStorage.getItem(key(file));
    if (!raw) return null;
    const saved = JSON.parse(raw) as Saved;
    // Expired URLs cannot be resumed.
    if (new Date(saved.plan.expiresAt).getTime() < Date.now() + 60_000) return null;
    return saved;
  } catch {
    return null;
  }
}

function save(file: File, s: Saved): void {
  try {
    localStorage.setItem(key(file), JSON.stringify(s));
  } catch {
    // A full storage only loses the resume point.
  }
}

export function forget(file: File): void {
  localStorage.removeItem(key(file));
}

/** Whether a resumable upload of this file is saved. */
export function hasSaved(file: File): boolean {
  return load(file) !== null;
}

/** One PUT with upload progress; resolves with the ETag the storage answered. */
function put(
  url: string,
  body: Blob,
  headers: { name: string; value: string }[],
  onBytes: (loaded: number) => void,
  signal: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const h of headers) {
      // The browser sets Content-Length itself.
      if (h.name.toLowerCase() !== "content-length") xhr.setRequestHeader(h.name, h.value);
    }
    xhr.upload.onprogress = (e) => onBytes(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader("ETag") ?? "");
      else reject(new ApiError(xhr.status, "storage_error", `Storage answered ${xhr.status} to a part.`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "The connection to storage dropped."));
    xhr.onabort = () => reject(new DOMException("canceled", "AbortError"));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

export class Upload {
  readonly controller = new AbortController();
  private plan: UploadPlan | null = null;
  private inFlight = new Map<number, number>();
  private confirmed = 0;
  private samples: [number, number][] = [];

  constructor(
    readonly file: File,
    private readonly onProgress: (p: Progress) => void,
  ) {}

  private report(resumed: boolean): void {
    let sent = this.confirmed;
    for (const v of this.inFlight.values()) sent += v;
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > 5000) this.samples.shift();
    const [t0, s0] = this.samples[0]!;
    const speed = now > t0 ? ((sent - s0) * 1000) / (now - t0) : 0;
    const eta = speed > 0 ? (this.file.size - sent) / speed : Infinity;
    this.onProgress({ sent, total: this.file.size, speed, eta, resumed });
  }

  async run(): Promise<Video> {
    const signal = this.controller.signal;
    const saved = load(this.file);
    const resumed = saved !== null;
    const plan =
      saved?.plan ??
      (await call<UploadPlan>("POST", "/uploads", {
        fileName: this.file.name,
        contentType: this.file.type || "video/mp4",
        size: this.file.size,
      }));
    this.plan = plan;
    const etags: Record<string, string> = saved?.etags ?? {};
    if (plan.method === "single") {
      await put(plan.url!, this.file, plan.headers, (n) => (this.inFlight.set(1, n), this.report(resumed)), signal);
      this.inFlight.clear();
      this.confirmed = this.file.size;
      this.report(resumed);
      forget(this.file);
      return call<Video>("POST", `/uploads/${plan.uploadId}/complete`, {});
    }
    save(this.file, { plan, etags });
    const partSize = plan.partSize!;
    const parts = plan.parts!;
    for (const p of parts) {
      if (etags[p.partNumber]) this.confirmed += Math.min(partSize, this.file.size - (p.partNumber - 1) * partSize);
    }
    this.report(resumed);
    const todo = parts.filter((p) => !etags[p.partNumber]);
    const worker = async () => {
      for (let next = todo.shift(); next; next = todo.shift()) {
        const start = (next.partNumber - 1) * partSize;
        const blob = this.file.slice(start, Math.min(start + partSize, this.file.size));
        for (let attempt = 0; ; attempt++) {
          try {
            const n = next.partNumber;
            const etag = await put(next.url, blob, [], (b) => (this.inFlight.set(n, b), this.report(resumed)), signal);
            this.inFlight.delete(n);
            this.confirmed += blob.size;
            etags[n] = etag;
            save(this.file, { plan, etags });
            this.report(resumed);
            break;
          } catch (e) {
            this.inFlight.delete(next.partNumber);
            if (signal.aborted || attempt >= PART_RETRIES) throw e;
            await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(PARALLEL, todo.length || 1) }, worker));
    } catch (e) {
      // One part gave up: stop the others (what finished is saved for the resume).
      this.controller.abort();
      throw e;
    }
    const video = await call<Video>("POST", `/uploads/${plan.uploadId}/complete`, {
      parts: parts.map((p) => ({ partNumber: p.partNumber, etag: etags[p.partNumber]! })),
    });
    forget(this.file);
    return video;
  }

  /** Stops the upload and gives it up (the storage drops its parts). */
  async cancel(): Promise<void> {
    this.controller.abort();
    forget(this.file);
    if (this.plan) {
      await call("DELETE", `/uploads/${this.plan.uploadId}`).catch(() => undefined);
      await api.deleteVideo(this.plan.videoId).catch(() => undefined);
    }
  }
}
