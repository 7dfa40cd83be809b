// Drives the dashboard in a real headless chromium (Debian's, through playwright-core) the
// way a person would: it opens /ui with the token, sees the webhooks, watches a POSTed event
// arrive live, opens a failed delivery and presses Redeliver. Run by tests/dashboard.rs, which
// sets up the server and checks what reached the target; screenshots go to SCREENSHOTS.
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ui = env("UI_URL");
const receiveUrl = env("RECEIVE_URL");
const secret = env("INBOUND_SECRET");
const inboundId = env("INBOUND_ID");
const outboundId = env("OUTBOUND_ID");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const problems = [];
page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
page.on("pageerror", (e) => problems.push(String(e)));
const step = async (name, fn) => {
  try {
    await fn();
    console.log(`ok: ${name}`);
  } catch (e) {
    await page.screenshot({ path: `${shots}/dashboard-failed.png`, fullPage: true }).catch(() => {});
    console.error(`FAILED: ${name}: ${e.message}\nconsole errors: ${problems.join(" | ")}`);
    await browser.close();
    process.exit(1);
  }
};

await step("the token link opens the page and leaves the address bar", async () => {
  await page.goto(ui);
  if (page.url().includes("token=")) throw new Error(`still at ${page.url()}`);
  await page.locator(`[data-testid=webhook-row][data-id="${inboundId}"]`).waitFor({ timeout: 10000 });
  await page.locator(`[data-testid=webhook-row][data-id="${outboundId}"]`).waitFor({ timeout: 10000 });
});

await step("the live stream connects", async () => {
  await page.waitForFunction(() => document.body.dataset.live === "1", null, { timeout: 10000 });
});

let eventId;
await step("a POSTed event appears live", async () => {
  const body = JSON.stringify({ event: "message.received", id: "browser-" + Date.now(), data: { text: "<img src=x onerror=alert(1)> hello from the browser test" } });
  const signature = createHmac("sha256", secret).update(body).digest("hex");
  const resp = await fetch(receiveUrl, { method: "POST", headers: { "content-type": "application/json", "x-webhook-signature": signature }, body });
  const answer = await resp.json();
  if (resp.status !== 200 || !answer.event_id) throw new Error(`receiver said ${resp.status} ${JSON.stringify(answer)}`);
  eventId = answer.event_id;
  await page.locator(`[data-testid=event-row][data-event-id="${eventId}"]`).waitFor({ timeout: 10000 });
  await page.locator(`[data-testid=event-row][data-event-id="${eventId}"]`).click();
  await page.locator("[data-testid=event-detail]", { hasText: "hello from the browser test" }).waitFor({ timeout: 5000 });
  // The payload's markup is shown as text, never run or rendered.
  if (await page.locator("#event-detail img").count() !== 0) throw new Error("payload HTML was rendered");
  await page.screenshot({ path: `${shots}/dashboard-live-event.png`, fullPage: true });
});

await step("a failed delivery opens with its request and response", async () => {
  await page.selectOption("#f-webhook", outboundId);
  await page.selectOption("select[name=status]", "failed");
  await page.click("#filters button[type=submit]");
  const failed = page.locator(`[data-testid=delivery-row][data-status=failed][data-direction=outbound]`).first();
  await failed.waitFor({ timeout: 10000 });
  await failed.click();
  await page.locator("[data-testid=detail-response]", { hasText: "sink answered 500" }).waitFor({ timeout: 5000 });
  await page.locator("[data-testid=detail-request]", { hasText: "webhook-signature" }).waitFor({ timeout: 5000 });
});

await step("Redeliver sends it again and the new attempt succeeds", async () => {
  await page.selectOption("select[name=status]", "");
  await page.click("#filters button[type=submit]");
  await page.click("[data-testid=redeliver]");
  const result = page.locator("[data-testid=redeliver-result]", { hasText: "queued as attempt" });
  await result.waitFor({ timeout: 10000 });
  const id = await result.getAttribute("data-delivery-id");
  await page.locator(`[data-testid=delivery-row][data-id="${id}"][data-status=succeeded]`).waitFor({ timeout: 15000 });
  await page.screenshot({ path: `${shots}/dashboard-redelivered.png`, fullPage: true });
});

if (problems.length) {
  console.error(`FAILED: the page logged errors: ${problems.join(" | ")}`);
  process.exit(1);
}
await browser.close();
console.log("dashboard: all steps passed");
