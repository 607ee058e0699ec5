// The tracking page: plain JavaScript, no build step. Everything shown comes from /api/…
// with the bearer token the user typed (kept in this tab's sessionStorage only), and is
// written with textContent, never as HTML.
"use strict";

const STEP_LABELS = {
  submitted: "submitted · đã gửi",
  routed: "routed to the inbox · đã chuyển",
  revoked: "revoked · thu hồi",
  updated: "updated · cập nhật",
  replaced: "replaced · thay thế",
  delivered: "01 arrived · đã đến",
  rejected: "02 rejected · từ chối",
  accepted: "03 accepted · đã tiếp nhận",
  assigned: "04 assigned · đã phân công",
  processing: "05 processing · đang xử lý",
  completed: "06 completed · hoàn thành",
  take_back_requested: "13 take-back requested · đề nghị lấy lại",
  agreed: "15 agreed · đồng ý",
  refused: "16 refused · từ chối yêu cầu",
  overdue: "overdue · quá hạn",
  status: "status",
};
const state = { page: 1, pageSize: 20, filters: new URLSearchParams() };

function token() {
  return sessionStorage.getItem("vdx-token") || "";
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) {
    const error = new Error(response.status === 404 ? "not found" : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function when(iso) {
  const moment = new Date(iso);
  const node = element("time", moment.toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh" }));
  node.dateTime = iso;
  return node;
}

function badge(journey) {
  const span = element("span", null, "badges");
  span.append(element("span", journey.state, `badge ${journey.state}`));
  if (journey.overdue) span.append(element("span", "overdue", "badge overdue"));
  return span;
}

function row(cells) {
  const tr = element("tr");
  for (const cell of cells) {
    const td = element("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function documentLink(documentId) {
  const link = element("a", documentId);
  link.href = `#${encodeURIComponent(documentId)}`;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("document-id").value = documentId;
    find(documentId);
  });
  return link;
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem("vdx-token", document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  await refresh();
}

async function refresh() {
  const who = document.getElementById("who");
  if (!token()) {
    who.textContent = "not signed in";
    return;
  }
  try {
    const me = await api("/api/me");
    who.textContent = me.operator ? "signed in: operator" : `signed in: ${me.agencies.join(", ")}`;
  } catch (error) {
    who.textContent = error.status === 401 ? "token refused" : `error: ${error.message}`;
    return;
  }
  await Promise.all([overdue(), journeys()]);
}

async function find(documentId) {
  const target = document.getElementById("document");
  const message = document.getElementById("find-message");
  target.replaceChildren();
  message.textContent = "";
  message.className = "";
  let track;
  try {
    track = await api(`/api/documents/${encodeURIComponent(documentId)}`);
  } catch (error) {
    message.textContent = error.status === 404 ? `No document ${documentId} for you.` : error.message;
    message.className = "error";
    return;
  }
  const heading = element("h3", track.document_id);
  heading.id = "document-title";
  const from = element("p", `from ${track.sender}`);
  if (track.submitted_at) {
    from.append(" · submitted ");
    from.append(when(track.submitted_at));
  }
  const cards = element("div", null, "recipients");
  for (const { journey, steps } of track.recipients) {
    const card = element("article", null, "recipient");
    card.dataset.recipient = journey.recipient;
    const title = element("h3", journey.recipient);
    title.append(element("span", journey.tier, "badge"), badge(journey));
    card.append(title);
    // The code addressed had closed: its successor took the document in its place.
    if (journey.forwarded_to) {
      card.append(element("p", `forwarded to ${journey.forwarded_to}`, "forwarded"));
    }
    if (journey.due_date) card.append(element("p", `due ${journey.due_date}`, "due"));
    const list = element("ol", null, "timeline");
    for (const step of steps) {
      const item = element("li", null, step.kind);
      item.dataset.kind = step.kind;
      item.append(when(step.at), element("span", STEP_LABELS[step.kind] || step.kind));
      if (step.by && step.by !== journey.recipient) item.append(element("small", ` by ${step.by}`));
      if (step.note) item.append(element("span", step.note, "note"));
      list.append(item);
    }
    card.append(list);
    cards.append(card);
  }
  target.append(heading, from, cards);
}

async function overdue() {
  const overview = await api("/api/overdue");
  document.getElementById("overdue-summary").textContent =
    `${overview.total} overdue on ${overview.as_of}`;
  const tiers = document.querySelector("#overdue-tiers tbody");
  tiers.replaceChildren(...Object.entries(overview.by_tier).map(([tier, count]) => row([tier, count])));
  const agencies = document.querySelector("#overdue-agencies tbody");
  agencies.replaceChildren(...overview.agencies.map((a) => row([a.agency, a.tier, a.overdue])));
  const documents = document.querySelector("#overdue-documents tbody");
  documents.replaceChildren(
    ...overview.documents.map((j) => row([documentLink(j.document_id), j.recipient, j.due_date, j.state])),
  );
  const select = document.querySelector("#filters select[name=tier]");
  if (select.options.length === 1) {
    for (const tier of Object.keys(overview.by_tier)) select.append(element("option", tier));
  }
}

async function journeys() {
  const query = new URLSearchParams(state.filters);
  query.set("page", state.page);
  query.set("page_size", state.pageSize);
  const page = await api(`/api/documents?${query}`);
  const body = document.querySelector("#journeys tbody");
  body.replaceChildren(
    ...page.items.map((j) =>
      row([
        when(j.routed_at),
        documentLink(j.document_id),
        j.sender,
        j.forwarded_to ? `${j.recipient} → forwarded to ${j.forwarded_to}` : j.recipient,
        j.tier,
        badge(j),
        j.due_date,
      ]),
    ),
  );
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  document.getElementById("page").textContent = `page ${page.page} of ${pages} (${page.total})`;
  document.getElementById("previous").disabled = page.page <= 1;
  document.getElementById("next").disabled = page.page >= pages;
}

function filter(event) {
  event.preventDefault();
  state.filters = new URLSearchParams();
  for (const [name, value] of new FormData(event.target)) if (value) state.filters.set(name, value);
  state.page = 1;
  journeys();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", signIn);
  document.getElementById("find").addEventListener("submit", (event) => {
    event.preventDefault();
    find(document.getElementById("document-id").value.trim());
  });
  document.getElementById("filters").addEventListener("submit", filter);
  document.getElementById("previous").addEventListener("click", () => { state.page -= 1; journeys(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; journeys(); });
  refresh();
});
