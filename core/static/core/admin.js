// Safar's admin, loaded on every admin page. No inline scripts: the Content-Security-Policy
// allows scripts from our own static files only.
"use strict";
document.addEventListener("change", (event) => {
  // The language menu in the header switches at once (the button is shown only without JS).
  if (event.target.id === "safar-language") {
    event.target.form.submit();
  }
});
