// The review desk's keyboard: the cursor starts on the first field that needs a person; Enter
// accepts what the field shows (typing first replaces it) and moves to the next such field; the
// rules run again on the server and their findings are updated in place. Alt+Z enlarges the crop
// of the current field; Alt+A approves when nothing is left open (supervisors).
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const head = document.querySelector(".app-head");
  if (!head) return;
  const live = document.getElementById("live");
  const inputs = Array.from(document.querySelectorAll("input.fv"));
  const say = (text) => { live.textContent = text; };

  function pending() {
    return inputs.filter((i) => i.dataset.flagged === "1" && !i.readOnly);
  }

  function select(input) {
    if (!input) return;
    input.focus();
    input.select();
    document.querySelectorAll(".box.current, tr.current").forEach((e) => e.classList.remove("current"));
    const id = input.dataset.fieldId;
    document.querySelectorAll(`[data-field-id="${id}"]`).forEach((e) => {
      if (e.classList.contains("box") || e.tagName === "TR") e.classList.add("current");
    });
  }

  function nextAfter(input) {
    const open = pending();
    const after = open.filter((i) => inputs.indexOf(i) > inputs.indexOf(input));
    return after[0] || open.find((i) => i !== input);
  }

  function renderFindings(findings) {
    const list = document.getElementById("findings");
    list.innerHTML = "";
    if (!findings.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "指摘はありません";
      list.appendChild(li);
      return;
    }
    for (const f of findings) {
      const li = document.createElement("li");
      li.className = f.severity + (f.overridden ? " overridden" : "");
      li.dataset.rule = f.rule;
      li.dataset.field = f.field || "";
      const code = document.createElement("code");
      code.textContent = f.rule;
      li.appendChild(code);
      li.appendChild(document.createTextNode(" " + f.message));
      list.appendChild(li);
    }
  }

  async function accept(input) {
    const body = new URLSearchParams({ value: input.value });
    const response = await fetch(`/fields/${input.dataset.fieldId}`, {
      method: "POST", body,
      headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", "Accept": "application/json" },
    });
    const result = await response.json();
    if (!response.ok) { say(result.error || "保存できませんでした"); return false; }
    input.dataset.flagged = "0";
    const row = input.closest("tr");
    row.classList.remove("flagged", "finding");
    row.classList.add("done");
    document.querySelectorAll(`.box[data-field-id="${input.dataset.fieldId}"]`).forEach((b) => {
      b.classList.remove("flagged", "finding"); b.classList.add("ok");
    });
    row.querySelector(".meta").textContent = `${result.field.method} ・ 確認済み`;
    renderFindings(result.findings);
    const status = document.getElementById("status");
    status.className = "badge " + result.status;
    status.textContent = { incomplete: "不足あり", needs_review: "要確認", ready: "承認待ち" }[result.status] || result.status;
    return true;
  }

  inputs.forEach((input) => {
    input.addEventListener("focus", () => select(input));
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        if (input.readOnly) return;
        if (await accept(input)) {
          const next = nextAfter(input);
          const saved = input.getAttribute("aria-label");
          if (next) { select(next); say(`「${saved}」を保存しました。次は「${next.getAttribute("aria-label")}」です`); }
          else { input.blur(); say(`「${saved}」を保存しました。要確認の項目はありません。Alt+A で承認できます`); }
        }
      }
    });
  });

  document.addEventListener("keydown", async (event) => {
    if (event.altKey && (event.key === "z" || event.key === "Z")) {
      event.preventDefault();
      const row = document.activeElement && document.activeElement.closest("tr");
      if (row) row.classList.toggle("zoom");
    }
    if (event.altKey && (event.key === "a" || event.key === "A")) {
      event.preventDefault();
      if (pending().length) { say("まだ要確認の項目があります"); select(pending()[0]); return; }
      const response = await fetch(head.dataset.approveUrl, {
        method: "POST", headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", "Accept": "application/json" },
      });
      const result = await response.json();
      if (response.ok) { say("承認しました"); window.location.reload(); }
      else say(result.error || "承認できませんでした");
    }
  });

  select(pending()[0]);
})();
