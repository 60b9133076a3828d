// Shows every time in the viewer's own time zone. The page states times in UTC (RFC 3339) in
// each <time datetime> element; without this script they stay readable as they are.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      el.title = el.getAttribute("datetime");
      el.textContent = format.format(at);
    }
  }
});
