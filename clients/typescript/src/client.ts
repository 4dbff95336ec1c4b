// A small client typed by the generated OpenAPI schema. The test suite
// type-checks it (a drifted spec breaks the build) and runs it against a
// live server: upload a file, complete the upload, list and fetch videos.
//
//   node dist/client.js <server-base-url> <bearer-token>
import type { components, paths } from "./schema.js";

type UploadPlan = components["schemas"]["UploadPlan"];
type VideoBody = components["schemas"]["VideoBody"];
type VideoPage = components["schemas"]["VideoPage"];
type ErrorBody = components["schemas"]["ErrorBody"];
type CreateUpload = paths["/uploads"]["post"]["requestBody"]["content"]["application/json; charset=utf-8"];

const [base, token] = process.argv.slice(2) as [string, string];
const api = `${base}/api/v1`;
const auth = { authorization: `Bearer ${token}` };

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json: unknown = await res.json();
  if (!res.ok) {
    const err = json as ErrorBody;
    throw new Error(`${method} ${path}: ${res.status} ${err.code}: ${err.message}`);
  }
  return json as T;
}

function assert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

const bytes = new TextEncoder().encode("not really a video, but bytes all the same");
const request: CreateUpload = { fileName: "from-typescript.mp4", contentType: "video/mp4", size: bytes.length };
const plan = await call<UploadPlan>("POST", "/uploads", request);
assert(plan.method === "single" && plan.url !== undefined, `unexpected plan ${JSON.stringify(plan)}`);
const headers: Record<string, string> = {};
for (const h of plan.headers) headers[h.name] = h.value;
const put = await fetch(plan.url, { method: "PUT", headers, body: bytes });
assert(put.ok, `PUT failed: ${put.status}`);

const done = await call<VideoBody>("POST", `/uploads/${plan.uploadId}/complete`, {});
assert(done.status === "uploaded", `status ${done.status}`);
const page = await call<VideoPage>("GET", "/videos?limit=10");
assert(page.items.some((v) => v.id === plan.videoId), "the new video is listed");
const video = await call<VideoBody>("GET", `/videos/${plan.videoId}`);
assert(video.title === "from-typescript", `title ${video.title}`);
console.log(`ok ${video.id} ${video.status}`);
