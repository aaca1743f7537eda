// Dates in the viewer's time zone; the UTC value stays in the title (shown on hover).
document.querySelectorAll("time[datetime]").forEach((el) => {
  const when = new Date(Number(el.getAttribute("datetime")));
  if (!Number.isNaN(when.getTime())) {
    el.title = el.textContent;
    el.textContent = when.toLocaleString();
  }
});

// The answer to a form names the page the browser should show as its address: reloading then fetches that
// page instead of sending the form again.
if (document.body.dataset.settle) {
  history.replaceState(null, "", document.body.dataset.settle);
}

// A button that deletes or revokes (class "danger") asks once before its form is sent.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.classList.contains("danger") && !window.confirm(`${button.textContent.trim()}?`)) {
    event.preventDefault();
  }
});
