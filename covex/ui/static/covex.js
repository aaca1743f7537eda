// Dates in the viewer's time zone; the UTC value stays in the title (shown on hover).
document.querySelectorAll("time[datetime]").forEach((el) => {
  const when = new Date(Number(el.getAttribute("datetime")));
  if (!Number.isNaN(when.getTime())) {
    el.title = el.textContent;
    el.textContent = when.toLocaleString();
  }
});
