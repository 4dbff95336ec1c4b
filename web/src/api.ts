// The API, typed by the schema generated from the server's OpenAPI spec
// (clients/typescript/src/schema.d.ts): a drifted spec breaks `npm run build`.
import type { components } from "../../clients/typescript/src/schema";

export type Schemas = components["schemas"];
export type Video = Schemas["VideoBody"];
export type VideoPage = Schemas["VideoPage"];
export type Short = Schemas["ShortBody"];
export type Recipe = Schemas["RecipeBody"];
export type RecipeWord = Schemas["RecipeWord"];
export type Job = Schemas["JobBody"];
export type UploadPlan = Schemas["UploadPlan"];
export type EventPage = Schemas["EventPage"];
export type Connection = Schemas["ConnectionBody"];
export type Publication = Schemas["PublicationBody"];
export type CreatePublication = Schemas["CreatePublication"];
export type Billing = Schemas["BillingBody"];
export type Picture = Schemas["PictureBody"];
export type ErrorBody = Schemas["ErrorBody"];

export interface TranscriptWord {
  text: string;
  start: number;
  end: number;
}
export interface Transcript {
  language: string;
  duration: number;
  segments: { start: number; end: number; text: string; words: TranscriptWord[] }[];
}

export interface AppConfig {
  authMode: "insecure-dev" | "clerk";
  clerkPublishableKey?: string | null;
  stripePublishableKey?: string | null;
}

/** An API error with its stable code and message, shown as they are. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Gives the bearer token of the signed-in person (Clerk's session token, or the dev user's). */
let tokenSource: () => Promise<string> = async () => "dev";

export function setTokenSource(f: () => Promise<string>): void {
  tokenSource = f;
}

export async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const token = await tokenSource();
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        // A file goes as it is, with its own type; anything else as JSON.
        ...(body === undefined ? {} : { "content-type": body instanceof Blob ? body.type || "application/octet-stream" : "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : body instanceof Blob ? body : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network_error", `The server did not answer (${String(e)}).`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json ?? {}) as Partial<ErrorBody>;
    throw new ApiError(res.status, e.code ?? "http_error", e.message ?? `${method} ${path} answered ${res.status}`);
  }
  return json as T;
}

export const api = {
  videos: (cursor?: string) => call<VideoPage>("GET", `/videos?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
  video: (id: string) => call<Video>("GET", `/videos/${id}`),
  rename: (id: string, title: string) => call<Video>("PATCH", `/videos/${id}`, { title }),
  deleteVideo: (id: string) => call<unknown>("DELETE", `/videos/${id}`),
  shorts: (id: string) => call<{ items: Short[] } | Short[]>("GET", `/videos/${id}/shorts`).then((r) => (Array.isArray(r) ? r : r.items)),
  short: (id: string) => call<Short>("GET", `/shorts/${id}`),
  jobs: (id: string) => call<{ items: Job[] } | Job[]>("GET", `/videos/${id}/jobs`).then((r) => (Array.isArray(r) ? r : r.items)),
  transcript: (id: string) => call<Transcript>("GET", `/videos/${id}/transcript`),
  recipe: (id: string) => call<Recipe>("GET", `/shorts/${id}/recipe`),
  putRecipe: (id: string, r: Recipe) => call<Recipe>("PUT", `/shorts/${id}/recipe`, r),
  analyze: (id: string, options: Record<string, unknown>) => call<Job>("POST", `/videos/${id}/jobs`, { type: "analyze", options }),
  events: (after?: string) => call<EventPage>("GET", `/events?limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`),
  connections: () => call<{ items: Connection[] }>("GET", "/connections").then((r) => r.items),
  authorize: (platform: string, mode?: string) =>
    call<{ url: string }>("GET", `/connections/${platform}/authorize${mode ? `?mode=${mode}` : ""}`),
  callback: (platform: string, code: string, state: string) =>
    call<Connection>("GET", `/connections/${platform}/callback?code=${encodeURIComponent(code)}&state=${encodeURIComponent(state)}`),
  disconnect: (id: string) => call<unknown>("DELETE", `/connections/${id}`),
  publish: (shortId: string, body: CreatePublication) =>
    call<Publication>("POST", `/shorts/${shortId}/publications`, body, { "Idempotency-Key": crypto.randomUUID() }),
  publications: () => call<{ items: Publication[] }>("GET", "/publications").then((r) => r.items),
  cancelPublication: (id: string) => call<Publication>("POST", `/publications/${id}/cancel`),
  billing: () => call<Billing>("GET", "/billing"),
  checkout: (plan: string) => call<{ url: string }>("POST", "/billing/checkout", { plan }),
  portal: () => call<{ url: string }>("POST", "/billing/portal"),
  audiogramBackground: () =>
    call<Picture>("GET", "/organization/audiogram-background").catch((e: unknown) => {
      if (e instanceof ApiError && e.code === "image_not_found") return null;
      throw e;
    }),
  setAudiogramBackground: (file: Blob) => call<Picture>("PUT", "/organization/audiogram-background", file),
  removeAudiogramBackground: () => call<unknown>("DELETE", "/organization/audiogram-background"),
};
