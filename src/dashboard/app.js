// The dashboard page: reads the /ui/api JSON (the MCP tools' documents) and renders it.
// Everything that came from a sender or a target is set as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let selected = null;
let olderCursor = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function statusClass(s) {
  return s === "succeeded" ? "ok" : s === "failed" ? "bad" : s === "pending" ? "wait" : "";
}

function health(w) {
  if (!w.enabled) return [w.disabled_reason ? "disabled: " + w.disabled_reason : "paused", "bad"];
  if (w.failing_since) return ["failing since " + w.failing_since + " (" + w.failure_count + " failures)", "wait"];
  return ["healthy", "ok"];
}

async function loadWebhooks() {
  const { webhooks } = await api("/ui/api/webhooks");
  const rows = $("webhook-rows");
  rows.replaceChildren();
  const select = $("f-webhook");
  const chosen = select.value;
  select.replaceChildren(el("option", "any"));
  select.firstChild.value = "";
  for (const w of webhooks) {
    const tr = el("tr");
    tr.dataset.testid = "webhook-row";
    tr.dataset.id = w.id;
    const [text, cls] = health(w);
    for (const cell of [w.id, w.direction, w.provider, w.url, (w.events || []).join(", ")]) tr.append(el("td", cell));
    tr.append(el("td", text, cls));
    rows.append(tr);
    const opt = el("option", (w.description ? w.description + " — " : "") + w.id);
    opt.value = w.id;
    select.append(opt);
  }
  select.value = chosen;
  $("no-webhooks").hidden = webhooks.length > 0;
}

function eventRow(e, fresh) {
  const li = el("li", e.received_at + "  " + e.event + "  webhook " + e.webhook_id + "  " + e.id, fresh ? "new" : "");
  li.dataset.testid = "event-row";
  li.dataset.eventId = e.id;
  li.addEventListener("click", () => showEvent(e.id));
  return li;
}

async function showEvent(id) {
  const e = await api("/ui/api/events/" + encodeURIComponent(id));
  const pre = $("event-detail");
  pre.hidden = false;
  pre.textContent = JSON.stringify({ id: e.id, event: e.event, webhook_id: e.webhook_id, received_at: e.received_at, headers: e.untrusted_payload.headers, payload: e.untrusted_payload.payload }, null, 2);
}

async function loadEvents() {
  const { events, cursor } = await api("/ui/api/events");
  const list = $("event-rows");
  list.replaceChildren(...events.map((e) => eventRow(e, false)));
  follow(cursor);
}

function follow(cursor) {
  const source = new EventSource("/ui/api/events/stream?after=" + encodeURIComponent(cursor));
  const live = $("live");
  source.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "pill on";
    document.body.dataset.live = "1";
  });
  source.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "pill off";
    document.body.dataset.live = "0";
  });
  source.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    $("event-rows").prepend(eventRow(e, true));
    soon(loadDeliveries);
  });
}

let timer = null;
function soon(fn) {
  clearTimeout(timer);
  timer = setTimeout(() => fn().catch(report), 300);
}

function filterQuery(cursor) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("filters"))) if (v) params.set(k, v);
  if (cursor) params.set("cursor", cursor);
  return params.toString();
}

function deliveryRow(d) {
  const tr = el("tr", null, "clickable" + (d.id === selected ? " selected" : ""));
  tr.dataset.testid = "delivery-row";
  tr.dataset.id = d.id;
  tr.dataset.status = d.status;
  tr.dataset.direction = d.direction;
  tr.dataset.trigger = d.trigger || "";
  tr.append(el("td", d.created_at), el("td", d.direction), el("td", d.webhook_id), el("td", d.event || ""),
    el("td", d.status, statusClass(d.status)), el("td", d.status_code ?? ""), el("td", d.attempt ?? ""), el("td", d.error || ""));
  tr.addEventListener("click", () => showDelivery(d.id).catch(report));
  return tr;
}

async function loadDeliveries(older) {
  const page = await api("/ui/api/deliveries?" + filterQuery(older ? olderCursor : null));
  const rows = $("delivery-rows");
  const made = page.deliveries.map(deliveryRow);
  if (older) rows.append(...made); else rows.replaceChildren(...made);
  olderCursor = page.next_cursor;
  $("more").hidden = !olderCursor;
}

function headerText(headers) {
  return Object.entries(headers || {}).map(([k, v]) => k + ": " + v).join("\n");
}

async function showDelivery(id) {
  selected = id;
  const d = await api("/ui/api/deliveries/" + encodeURIComponent(id));
  $("detail").hidden = false;
  $("detail-id").textContent = d.id;
  const dl = $("detail-fields");
  dl.replaceChildren();
  for (const k of ["direction", "webhook_id", "event", "trigger", "attempt", "url", "status", "status_code", "duration_ms", "error", "created_at", "next_attempt_at", "message_id"]) {
    if (d[k] === null || d[k] === undefined) continue;
    dl.append(el("dt", k), el("dd", d[k], k === "status" ? statusClass(d[k]) : ""));
  }
  $("detail-request").textContent = headerText(d.request_headers) + "\n\n" + (d.request_body || "");
  $("detail-response").textContent = d.direction === "inbound"
    ? "(answered by the receiver: " + (d.status_code ?? "") + ")"
    : headerText(d.response_headers) + "\n\n" + (d.response_body || "");
  $("redeliver").hidden = d.direction !== "outbound";
  $("redeliver-result").textContent = "";
  for (const tr of document.querySelectorAll("#delivery-rows tr")) tr.classList.toggle("selected", tr.dataset.id === id);
}

async function redeliver() {
  const out = $("redeliver-result");
  out.textContent = "queueing…";
  try {
    const r = await api("/ui/api/deliveries/" + encodeURIComponent(selected) + "/redeliver", { method: "POST" });
    out.textContent = "queued as attempt " + r.attempt + " (" + r.delivery_id + ")";
    out.dataset.deliveryId = r.delivery_id;
    // The serving process sends it within a second or so: follow it in the log.
    for (let i = 0; i < 20; i++) {
      await new Promise((done) => setTimeout(done, 500));
      await loadDeliveries();
      const row = document.querySelector('#delivery-rows tr[data-id="' + CSS.escape(r.delivery_id) + '"]');
      if (row && row.dataset.status !== "pending") break;
    }
  } catch (e) {
    out.textContent = "redeliver failed: " + e.message;
  }
}

function report(e) {
  $("live").textContent = e.message;
  $("live").className = "pill off";
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadDeliveries().catch(report); });
  $("more").addEventListener("click", () => loadDeliveries(true).catch(report));
  $("redeliver").addEventListener("click", redeliver);
  Promise.all([loadWebhooks(), loadEvents(), loadDeliveries()]).catch(report);
  setInterval(() => loadWebhooks().catch(report), 15000);
  setInterval(() => { if (document.visibilityState === "visible") loadDeliveries().catch(report); }, 5000);
});
