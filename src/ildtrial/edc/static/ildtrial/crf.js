/* Fast eCRF entry: each field is checked when it is left, the form is saved without
   reloading the page, and the keyboard is enough (Enter saves; after a refused save the
   focus goes to the first field to correct). Without JavaScript the form posts as usual. */
(function () {
  "use strict";

  var main = document.getElementById("main");
  var pending = null;

  function liveForm(el) {
    var form = el && el.closest ? el.closest("form.crf[data-live]") : null;
    return form && main.contains(form) ? form : null;
  }

  function fieldOf(el) {
    var box = el.closest("[data-field]");
    return box ? box.getAttribute("data-field") : null;
  }

  function show(code, messages) {
    var slot = document.getElementById("m-" + code);
    var box = slot && slot.closest("[data-field]");
    var input = document.getElementById("f-" + code);
    if (!slot || !box || !input) return;
    slot.textContent = "";
    messages.errors.forEach(function (text) {
      var div = document.createElement("div");
      div.className = "error";
      div.textContent = text;
      slot.appendChild(div);
    });
    messages.warnings.forEach(function (text) {
      var div = document.createElement("div");
      div.className = "warning";
      div.textContent = text;
      slot.appendChild(div);
    });
    box.classList.toggle("has-error", messages.errors.length > 0);
    box.classList.toggle("has-warning", messages.errors.length === 0 && messages.warnings.length > 0);
    if (messages.errors.length) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
      forgetInSummary(code);
    }
  }

  // a field corrected since the refused save leaves the summary at the top of the form
  function forgetInSummary(code) {
    var summary = document.getElementById("error-summary");
    var link = summary && summary.querySelector('a[href="#f-' + code + '"]');
    if (!link) return;
    link.closest("li").remove();
    if (!summary.querySelector("li")) summary.remove();
  }

  function showDerived(rows) {
    var region = document.getElementById("derived-live");
    if (!region || !rows.length) return;
    var list = document.createElement("dl");
    list.className = "facts";
    rows.forEach(function (row) {
      var dt = document.createElement("dt");
      dt.textContent = row.label;
      var dd = document.createElement("dd");
      dd.setAttribute("data-derived", row.key);
      dd.textContent = row.value + (row.unit ? " " + row.unit : "");
      list.appendChild(dt);
      list.appendChild(dd);
    });
    region.textContent = "";
    region.appendChild(list);
  }

  function check(form, code) {
    var url = form.getAttribute("data-check-url");
    if (!url) return;
    var data = new FormData(form);
    data.set("field", code);
    if (pending) pending.abort();
    pending = typeof AbortController === "function" ? new AbortController() : null;
    fetch(url, {method: "POST", body: data, credentials: "same-origin",
                headers: {"X-Requested-With": "fetch"}, signal: pending ? pending.signal : undefined})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (!answer) return;
        Object.keys(answer.fields).forEach(function (name) { show(name, answer.fields[name]); });
        showDerived(answer.derived || []);
        form.setAttribute("data-checked", answer.field);
      })
      .catch(function () { /* a failed check never blocks typing: the save checks again */ });
  }

  function focusAfterSave() {
    var target = main.querySelector("[aria-invalid=true]") ||
      main.querySelector(".confirm input[type=checkbox]:not(:checked)") ||
      main.querySelector("#form-errors, .messages [role=alert], section[role=alert]") ||
      main.querySelector(".messages li");
    if (target) {
      target.focus();
    } else {
      main.focus();
    }
  }

  function save(form, submitter) {
    if (pending) pending.abort();
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    var status = form.querySelector(".saving");
    var button = form.querySelector("button[type=submit]");
    form.setAttribute("aria-busy", "true");
    if (button) button.disabled = true;
    if (status) status.textContent = form.getAttribute("data-saving-text") || "…";
    fetch(form.action || window.location.href, {method: "POST", body: data, credentials: "same-origin",
                                                 headers: {"X-Requested-With": "fetch"}})
      .then(function (response) {
        return response.text().then(function (html) { return {response: response, html: html}; });
      })
      .then(function (result) {
        var page = new DOMParser().parseFromString(result.html, "text/html");
        var fresh = page.getElementById("main");
        if (!fresh) { throw new Error("no page"); }
        main.innerHTML = fresh.innerHTML;
        document.title = page.title;
        if (result.response.redirected) window.history.replaceState(null, "", result.response.url);
        focusAfterSave();
      })
      .catch(function () {
        form.removeAttribute("aria-busy");
        if (button) button.disabled = false;
        HTMLFormElement.prototype.submit.call(form);  // the page as it always worked
      });
  }

  document.addEventListener("focusout", function (event) {
    var el = event.target;
    var form = liveForm(el);
    if (!form || !el.name || el.name === "reason" || el.name === "confirm") return;
    var code = fieldOf(el);
    if (code) check(form, code);
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    var form = liveForm(el);
    if (form && el.tagName === "SELECT" && fieldOf(el)) check(form, fieldOf(el));
  });

  document.addEventListener("submit", function (event) {
    var form = liveForm(event.target);
    if (!form || !window.fetch || !window.DOMParser) return;
    event.preventDefault();
    save(form, event.submitter);
  });

  // Enter saves from any field of the form, as it does from a text box (not in a text area)
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing) return;
    var el = event.target;
    var form = liveForm(el);
    if (!form || el.tagName === "TEXTAREA" || el.tagName === "BUTTON" || el.tagName === "A") return;
    if (el.tagName === "INPUT" && /^(submit|button|reset)$/.test(el.type)) return;
    event.preventDefault();
    if (form.requestSubmit) form.requestSubmit();
    else form.dispatchEvent(new Event("submit", {cancelable: true, bubbles: true}));
  });
})();
