// The review desk's keyboard: the cursor starts on the first field that needs a person; Enter
// accepts what the field shows (typing first replaces it) and moves to the next such field; the
// rules run again on the server and their findings are updated in place. Enter while an IME is
// composing (the conversion Enter of a Japanese typist) is left to the IME. A value read at very
// low confidence takes a typed value or a second Enter (the server says so). Alt+Z enlarges the
// crop of the current field in place (it never covers the input); Alt+A approves (supervisors)
// when no field is left unchecked, and otherwise says what is left; the server has the last word.
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

  function unchecked() {  // what the server counts as "not yet checked" when approving
    return inputs.filter((i) => i.dataset.review === "1" && !i.readOnly);
  }

  async function answer(response) {  // the server's JSON, or a message when it sent none
    try { return await response.json(); } catch (e) { return { error: `エラーが起きました（${response.status}）` }; }
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
    if (input.dataset.armed === "1") body.set("confirm_low", "1");
    const response = await fetch(`/fields/${input.dataset.fieldId}`, {
      method: "POST", body,
      headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", "Accept": "application/json" },
    });
    const result = await answer(response);
    if (!response.ok) {
      if (result.low_confidence) input.dataset.armed = "1";  // the next Enter confirms the value shown
      say(result.error || "保存できませんでした");
      return false;
    }
    input.dataset.armed = "0";
    input.dataset.flagged = "0";
    input.dataset.review = "0";
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

  // A crop at its box's aspect, as small as fits the column but never below a readable height
  // (CROP_MIN px, or its own size if smaller) nor above CROP_MAX: a wide box scrolls sideways.
  const CROP_MIN = 52, CROP_MAX = 80;
  function fit(img) {
    if (!img.naturalWidth) return;
    const room = img.closest(".crop-scroll").clientWidth;
    const fits = room * img.naturalHeight / img.naturalWidth;
    img.style.height = `${Math.max(Math.min(img.naturalHeight, CROP_MIN), Math.min(fits, img.naturalHeight, CROP_MAX))}px`;
  }
  document.querySelectorAll("td.crop img").forEach((img) => {
    if (img.complete) fit(img); else img.addEventListener("load", () => fit(img));
  });

  inputs.forEach((input) => {
    // The script saves; a form's own submit (an Enter the script leaves alone, as the IME's) must not.
    input.form.addEventListener("submit", (event) => event.preventDefault());
    input.addEventListener("focus", () => select(input));
    input.addEventListener("input", () => { input.dataset.armed = "0"; });  // a typed value needs no second key
    input.addEventListener("keydown", async (event) => {
      if (event.isComposing || event.keyCode === 229) return;  // the IME's own Enter (変換の確定)
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
      const img = row && row.querySelector("td.crop img");
      if (img) {
        if (row.classList.toggle("zoom")) img.style.height = `${Math.min(img.naturalHeight * 2, 320)}px`;
        else fit(img);
      }
    }
    if (event.altKey && (event.key === "a" || event.key === "A")) {
      event.preventDefault();
      if (head.dataset.canApprove !== "1") { say(head.dataset.cannotApprove); return; }
      const left = unchecked();
      if (left.length) { say(`確認待ちの項目が ${left.length} 件あります`); select(left[0]); return; }
      const response = await fetch(head.dataset.approveUrl, {
        method: "POST", headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", "Accept": "application/json" },
      });
      const result = await answer(response);
      if (response.ok) { say("承認しました"); window.location.reload(); }
      else say(result.error || "承認できませんでした");
    }
  });

  select(pending()[0]);
})();
