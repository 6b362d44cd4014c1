// The hearing sheet as a LIFF form inside LINE (integrations/channels/liff.py). LINE's SDK gives the page
// the user's ID token; the server verifies it with LINE before it reads or stores anything.
"use strict";
const CONFIG = JSON.parse(document.getElementById("liff-config").textContent);
const base = "/liff/" + encodeURIComponent(CONFIG.program) + "/hearing";
const statusLine = document.getElementById("status");
const formEl = document.getElementById("f");
let definition = null;

function field(q) {
  const box = document.createElement("div"); box.dataset.q = q.id;
  if (q.when) box.dataset.when = JSON.stringify(q.when);
  const label = document.createElement("label"); label.className = "q";
  label.textContent = q.prompt + (q.required ? "" : "（任意）"); box.appendChild(label);
  if (q.help) { const h = document.createElement("div"); h.className = "help"; h.textContent = q.help; box.appendChild(h); }
  let input;
  if (q.type === "single_choice") {
    input = document.createElement("select"); input.appendChild(new Option("選んでください", ""));
    q.options.forEach(o => input.appendChild(new Option(o.label, o.value)));
  } else if (q.type === "yes_no") {
    input = document.createElement("select");
    [["", "選んでください"], ["yes", "はい"], ["no", "いいえ"]].forEach(([v, l]) => input.appendChild(new Option(l, v)));
  } else if (q.type === "multi_choice") {
    input = document.createElement("div");
    q.options.forEach(o => { const l = document.createElement("label"); const c = document.createElement("input");
      c.type = "checkbox"; c.value = o.value; l.appendChild(c); l.append(" " + o.label); input.appendChild(l);
      input.appendChild(document.createElement("br")); });
  } else {
    input = document.createElement(q.type === "text" ? "textarea" : "input");
    if (input.tagName === "INPUT") input.type = "text";
    if (q.example) input.placeholder = "例：" + q.example;
  }
  input.name = q.id; box.appendChild(input);
  const err = document.createElement("div"); err.className = "err"; box.appendChild(err);
  return box;
}
function valueOf(box) {
  const multi = box.querySelectorAll("input[type=checkbox]");
  if (multi.length) return Array.from(multi).filter(c => c.checked).map(c => c.value);
  const input = box.querySelector("[name]"); return input ? input.value : "";
}
function fill(answers) {  // a hearing begun in the chat: its answers so far
  Object.entries(answers || {}).forEach(([id, v]) => {
    const box = formEl.querySelector(`[data-q="${id}"]`); if (!box) return;
    const multi = box.querySelectorAll("input[type=checkbox]");
    if (multi.length) { multi.forEach(c => { c.checked = Array.isArray(v) && v.includes(c.value); }); return; }
    const input = box.querySelector("[name]"); if (input) input.value = v;
  });
}
function collect() {
  const answers = {};
  formEl.querySelectorAll("[data-q]").forEach(box => { if (!box.hidden) answers[box.dataset.q] = valueOf(box); });
  return answers;
}
function applyConditions() {
  const answers = {};
  formEl.querySelectorAll("[data-q]").forEach(box => {
    if (box.dataset.when) {
      const w = JSON.parse(box.dataset.when); let v = answers[w.question];
      if (v === "yes") v = true; if (v === "no") v = false;
      const vs = Array.isArray(v) ? v : [v];
      const holds = v !== undefined && v !== "" && (w.not_equals !== undefined ? !vs.includes(w.not_equals)
        : (w.in || [w.equals]).some(x => vs.includes(x)));
      box.hidden = !holds;
    }
    if (!box.hidden) answers[box.dataset.q] = valueOf(box);
  });
}
async function start() {
  try {
    await liff.init({ liffId: CONFIG.liffId });
    if (!liff.isLoggedIn()) { liff.login(); return; }
    definition = await (await fetch(base + "/form")).json();
  } catch (e) { statusLine.textContent = "LINE アプリから開いてください。"; return; }
  statusLine.textContent = definition.description || "";
  definition.sections.forEach(s => { const fs = document.createElement("fieldset");
    const lg = document.createElement("legend"); lg.textContent = s.title; fs.appendChild(lg);
    s.questions.forEach(q => fs.appendChild(field(q))); formEl.appendChild(fs); });
  const submit = document.createElement("button"); submit.type = "submit"; submit.textContent = "送信する";
  formEl.appendChild(submit); formEl.hidden = false; formEl.addEventListener("change", applyConditions);
  try {
    const draft = await (await fetch(base + "/draft", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id_token: liff.getIDToken() }) })).json();
    if (draft.number) { fill(draft.answers); statusLine.textContent = "チャットでお答えいただいた内容を入れてあります（受付番号：" + draft.number + "）。"; }
  } catch (e) { /* no draft: an empty form */ }
  applyConditions();
}
formEl.addEventListener("submit", async (event) => {
  event.preventDefault();
  formEl.querySelectorAll(".err").forEach(e => e.textContent = "");
  const res = await fetch(base, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id_token: liff.getIDToken(), answers: collect() }) });
  const data = await res.json();
  if (res.ok) { formEl.hidden = true; statusLine.textContent = data.message + "\n受付番号：" + data.number; return; }
  if (data.errors) { Object.entries(data.errors).forEach(([id, msg]) => {
      const box = formEl.querySelector(`[data-q="${id}"] .err`); if (box) box.textContent = msg; });
    statusLine.textContent = data.message; window.scrollTo(0, 0); return; }
  statusLine.textContent = data.message;
});
start();
