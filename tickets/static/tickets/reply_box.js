/* The admin reply box: picking a canned reply inserts it, filled in for this ticket by the
   server (in the customer's language), into the text at the cursor; the agent edits it before
   saving. Without JavaScript the form still works: a canned reply is used when the text is empty. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-reply-box]").forEach(function (box) {
    const select = box.querySelector("select[name$='-canned_reply']");
    const text = box.querySelector("textarea[name$='-body']");
    const url = box.dataset.cannedUrl;
    if (!select || !text || !url) return;
    select.addEventListener("change", function () {
      if (!select.value) return;
      fetch(url.replace(/\/0\/$/, "/" + encodeURIComponent(select.value) + "/"), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          return response.json();
        })
        .then(function (data) {
          const start = text.selectionStart ?? text.value.length;
          const end = text.selectionEnd ?? text.value.length;
          text.setRangeText(data.body, start, end, "end");
          text.dispatchEvent(new Event("input", { bubbles: true }));
          select.value = ""; // the text is what is saved now
          text.focus();
        })
        .catch(function () {
          /* keep the choice: the server fills it in on save when the text is empty */
        });
    });
  });
});
