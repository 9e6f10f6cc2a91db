// Safar's admin, loaded on every admin page. No inline scripts: the Content-Security-Policy
// allows scripts from our own static files only.
"use strict";
document.addEventListener("change", (event) => {
  // The language and calendar menus in the header switch at once (the button is shown only without JS).
  if (event.target.id === "safar-language" || event.target.id === "safar-calendar") {
    event.target.form.submit();
  }
});
