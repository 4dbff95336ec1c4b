// End-to-end test of the web app in a real headless Chromium (Debian's
// `chromium`, driven over CDP by playwright-core) against a real server
// with its worker: sign in as the dev user, upload a generated talk
// through the page, watch it reach ready without reloading, play a short,
// search the transcript and seek the source, trim a short and fix a word
// and see the re-render finish, delete a video, and interrupt a
// multipart upload midway then resume it after a page reload without
// sending the finished parts again; set and remove the audiogram
// background on the brand page. Every page is saved as a screenshot.
//
//   node web/e2e/run.mjs <server-base-url> <talk.mp4> <artefacts-dir>
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, talk, out] = process.argv.slice(2);
if (!base || !talk || !out) {
  console.error("usage: run.mjs <base-url> <talk.mp4> <artefacts-dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => m.type() === "error" && !m.text().includes("favicon") && console.log(`console: ${m.text()}`));
let shot = 0;
async function snap(name) {
  shot += 1;
  await page.screenshot({ path: join(out, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}
function step(s) {
  console.log(`[e2e] ${s}`);
}
async function api(path, init = {}) {
  const r = await fetch(`${base}/api/v1${path}`, { ...init, headers: { authorization: "Bearer dev", ...(init.headers ?? {}) } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

try {
  step("the dev user sees the videos page");
  await page.goto(base);
  await page.waitForSelector("#videos");
  await page.getByText("dev user (local)").waitFor();
  await snap("videos-empty");

  step("upload a talk through the page and watch it reach ready, without reloading");
  let reloads = 0;
  page.on("framenavigated", (f) => f === page.mainFrame() && (reloads += 1));
  await page.setInputFiles("#file", talk);
  await page.locator(".upload progress").first().waitFor({ timeout: 30_000 }).catch(() => undefined);
  const card = page.locator(".card.video").first();
  await card.waitFor({ timeout: 60_000 });
  await page.locator('.card.video[data-status="processing"]').first().waitFor({ timeout: 120_000 });
  await snap("video-processing");
  await page.locator('.card.video[data-status="ready"]').first().waitFor({ timeout: 900_000 });
  if (reloads !== 0) throw new Error(`the page reloaded ${reloads} times while the video processed`);
  await page.locator(".card.video .thumb img").first().waitFor({ timeout: 10_000 });
  await snap("video-ready");

  step("open the video: shorts play, the transcript searches and seeks the source");
  await card.locator("h3 a").click();
  const shortVideo = page.locator(".card.short video").first();
  await shortVideo.waitFor();
  const playing = await shortVideo.evaluate(async (v) => {
    v.muted = true;
    // Up to 30 s to get going (a loaded machine starts slowly), no fixed
    // wait; a play() refused while the first bytes load is asked again.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (v.paused) await v.play().catch(() => undefined);
      if (!v.paused && v.currentTime > 0.2) return { ok: true };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ok: false, paused: v.paused, currentTime: v.currentTime, readyState: v.readyState, networkState: v.networkState, error: v.error?.code ?? null };
  });
  if (!playing.ok) throw new Error(`the short does not play: ${JSON.stringify(playing)}`);
  const firstWord = (await page.locator(".transcript .word").nth(5).textContent()).replace(/[^\p{L}\p{N}']/gu, "");
  await page.getByLabel("Search the transcript").fill(firstWord);
  if ((await page.locator(".word.hit").count()) === 0) throw new Error(`searching ${firstWord} found nothing`);
  await page.locator(".transcript .word").nth(5).click();
  const seeked = await page.locator("video.source").evaluate((v) => v.currentTime);
  if (!(seeked > 0)) throw new Error(`clicking a word did not seek the source (${seeked})`);
  await snap("video-page");

  step("edit a short: trim its end, fix a word, and watch the re-render finish");
  const shortId = await page.locator(".card.short").first().getAttribute("data-short");
  const before = await api(`/shorts/${shortId}/recipe`);
  await page.locator(".card.short").first().getByRole("link", { name: "Edit" }).click();
  await page.locator("#trim-end").waitFor();
  await snap("editor");
  const end = page.locator("#trim-end");
  await end.fill(String(before.endSeconds - 3));
  await end.dispatchEvent("change");
  const snapped = Number(await end.inputValue());
  await page.locator(".word-input").first().fill("FIXED");
  await page.getByRole("button", { name: "Save and render" }).click();
  await page.locator("#render-status").getByText("rendered").waitFor({ timeout: 600_000 });
  const after = await api(`/shorts/${shortId}/recipe`);
  if (!(after.endSeconds < before.endSeconds)) throw new Error(`the trim did not stick: ${after.endSeconds}`);
  if (Math.abs(after.endSeconds - snapped) > 0.01) throw new Error("the saved end is not the snapped one");
  if (after.words[0].text !== "FIXED") throw new Error(`the fixed word did not stick: ${after.words[0].text}`);
  await snap("editor-rendered");

  step("the publish dialog, the accounts, publications and billing pages");
  await page.goto(`${base}/videos/${(await api(`/shorts/${shortId}`)).videoId}`);
  await page.locator(".card.short").first().getByRole("button", { name: "Publish" }).click();
  await page.locator("dialog").getByText("No connected accounts yet").waitFor();
  await snap("publish-dialog");
  await page.keyboard.press("Escape");

  step("connect YouTube through its consent page and publish the short from the dialog");
  await page.getByRole("navigation").getByRole("link", { name: "Accounts" }).click();
  await page.getByRole("button", { name: "YouTube" }).click();
  await page.getByRole("heading", { level: 1, name: "Connected" }).waitFor({ timeout: 30_000 });
  await snap("connected");
  await page.goto(`${base}/videos/${(await api(`/shorts/${shortId}`)).videoId}`);
  await page.locator(".card.short").first().getByRole("button", { name: "Publish" }).click();
  await page.getByLabel("Account").waitFor();
  await page.getByLabel("Tags").fill("talk, money");
  await snap("publish-form");
  await page.locator("dialog").getByRole("button", { name: "Publish" }).click();
  await page.locator("dialog").getByText("Scheduled").waitFor({ timeout: 30_000 });
  await page.locator("dialog").getByRole("link", { name: "Follow it" }).click();
  await page.getByRole("heading", { level: 1, name: "Publications" }).waitFor();
  await page.locator("tbody .badge.published").first().waitFor({ timeout: 180_000 });
  if ((await page.locator("tbody a", { hasText: "Open" }).count()) === 0) throw new Error("no link to the published video");
  await snap("published");

  for (const [path, name, text] of [
    ["/connections", "accounts", "Connected accounts"],
    ["/publications", "publications", "Publications"],
    ["/billing", "billing", "Billing"],
  ]) {
    await page.getByRole("navigation").getByRole("link", { name: path === "/connections" ? "Accounts" : text }).click();
    await page.getByRole("heading", { level: 1, name: text }).waitFor();
    await page.waitForTimeout(300);
    await snap(name);
  }
  step("the brand page sets, shows and removes the audiogram background");
  const brandDir = mkdtempSync(join(tmpdir(), "videdit-e2e-brand-"));
  const brandPng = join(brandDir, "brand.png");
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "gradients=s=540x960", "-frames:v", "1", "-y", brandPng]);
  await page.getByRole("navigation").getByRole("link", { name: "Brand" }).click();
  await page.getByRole("heading", { level: 1, name: "Brand" }).waitFor();
  await page.locator("#no-background").waitFor();
  await page.setInputFiles("#background", brandPng);
  await page.locator("img.preview").waitFor();
  await page.waitForFunction(() => document.querySelector("img.preview")?.naturalWidth === 540, null, { timeout: 15_000 });
  if (!(await page.locator(".picture figcaption").innerText()).includes("540 × 960")) throw new Error("the picture's size is not shown");
  const stored = await api("/organization/audiogram-background");
  if (stored.contentType !== "image/png" || stored.width !== 540) throw new Error(`stored ${JSON.stringify(stored)}`);
  await snap("brand");
  await page.getByRole("button", { name: "Remove" }).click();
  await page.locator("#no-background").waitFor();
  rmSync(brandDir, { recursive: true, force: true });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("navigation").getByRole("link", { name: "Videos" }).click();
  await page.locator(".card.video").first().waitFor();
  await snap("videos-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("an upload cut midway resumes after a reload without sending finished parts again");
  const scratch = mkdtempSync(join(tmpdir(), "videdit-e2e-"));
  const big = join(scratch, "big-upload.mp4");
  const bytes = Buffer.alloc(110 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(big, bytes);
  // Parts the storage took, and parts asked for after the reload.
  const finished = new Set();
  const resent = new Map();
  let reloaded = false;
  const part = (url) => url.match(/[?&]part=(\d+)/)?.[1];
  page.on("response", (r) => {
    const n = r.request().method() === "PUT" && part(r.url());
    if (n && r.ok() && !reloaded) finished.add(n);
  });
  page.on("request", (r) => {
    const n = r.method() === "PUT" && part(r.url());
    if (n && reloaded) resent.set(n, (resent.get(n) ?? 0) + 1);
  });
  // The network drops for part 4: its requests fail, the others go through.
  await page.route(/[?&]part=4(&|$)/, (route) => route.abort("internetdisconnected"));
  await page.setInputFiles("#file", big);
  await page.getByText("Choose the same file again to resume").waitFor({ timeout: 120_000 });
  await snap("upload-interrupted");
  if (!finished.has("1") || finished.has("4")) throw new Error(`finished before the drop: ${[...finished]}`);
  await page.unroute(/[?&]part=4(&|$)/);
  reloaded = true;
  await page.reload();
  await page.waitForSelector("#videos");
  await page.setInputFiles("#file", big);
  await page.getByText("resumed").first().waitFor({ timeout: 30_000 });
  await page.locator(".upload").first().waitFor({ state: "detached", timeout: 120_000 });
  for (const n of finished) {
    if (resent.has(n)) throw new Error(`finished part ${n} was sent again after the reload`);
  }
  if (!resent.has("4")) throw new Error("part 4 was never sent again");
  console.log(`[e2e] parts finished before the drop: ${[...finished].sort()}; sent after the reload: ${[...resent.keys()].sort()}`);
  const resumedCard = page.locator(".card.video", { hasText: "big-upload" });
  await resumedCard.waitFor({ timeout: 30_000 });
  await snap("upload-resumed");
  rmSync(scratch, { recursive: true, force: true });

  step("delete videos, with a confirmation");
  for (const title of ["big-upload", null]) {
    const target = title ? page.locator(".card.video", { hasText: title }) : page.locator(".card.video").first();
    const id = await target.getAttribute("data-video");
    await target.getByRole("button", { name: /^Delete/ }).click();
    await page.locator("dialog").getByRole("button", { name: "Delete" }).click();
    await page.locator(`.card.video[data-video="${id}"]`).waitFor({ state: "detached", timeout: 30_000 });
  }
  await snap("videos-after-delete");
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("ok");
} catch (e) {
  await snap("failure").catch(() => undefined);
  console.error(`[e2e] FAILED: ${e instanceof Error ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
