// sokkel: the saved colour theme, applied before the page is first painted.
// Loaded without defer in <head> (the page's CSP allows no inline script), so
// a dark choice never flashes light while app.js, which is deferred, loads.
// app.js's applyTheme does the same later and handles the theme menu.
"use strict";
try {
  const theme = localStorage.getItem("sokkel.theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch {
  // Storage off (private mode, policy): the system setting applies.
}
