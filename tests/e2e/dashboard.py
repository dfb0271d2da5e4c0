#!/usr/bin/python3
"""Drive the drender dashboard in headless Debian chromium (python3-selenium) for dashboard.sh.

Usage: dashboard.py PART URL OUTDIR [TOKEN]
  PART serve : page, submit, finish, cancel, XSS scene, 10,000-frame grid timing
  PART token : the page with --token (unusable without it, works with it)
  PART http  : the read-only page of --http during a batch
  PART big   : a real 10,000-frame job (fake Blender at a tiny cost): time to apply an update
  PART demo  : the demo scene rendered by real Blender: the README's screenshot (OUTDIR/demo.png)

Prints one line per check, "STATUS DESCRIPTION" (0 = pass), and "# ..." notes; dashboard.sh turns
them into TAP. Waits on page state (WebDriverWait), never on fixed sleeps.
"""
import os
import statistics
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

PART, URL, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = sys.argv[4] if len(sys.argv) > 4 else ""
XSS = "<img src=x onerror=alert(1)>"


def check(cond, desc):
    print(("0 " if cond else "1 ") + desc, flush=True)
    return cond


def note(msg):
    print("# " + msg, flush=True)


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,1000",
              "--user-data-dir=" + tempfile.mkdtemp(prefix="drender-chromium-")):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def shot(d, name):
    os.makedirs(OUT, exist_ok=True)
    d.save_screenshot(os.path.join(OUT, name + ".png"))


def console_errors(d, allow=()):
    errs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    return [e["message"] for e in errs if not any(a in e["message"] for a in allow)]


def wait(d, fn, secs=30):
    try:
        WebDriverWait(d, secs, poll_frequency=0.1).until(lambda _: fn())
        return True
    except TimeoutException:
        return False


def js(d, expr):
    return d.execute_script("return " + expr)


def job_row(d, jid):
    rows = d.find_elements(By.CSS_SELECTOR, '#jobs-body tr[data-id="%s"]' % jid)
    return rows[0] if rows else None


def row_state(d, jid):
    return js(d, "(function(){var r=document.querySelector('#jobs-body tr[data-id=\"%s\"] .state');"
                 "return r?r.textContent:null})()" % jid)


def submit(d, blend, frames):
    b = d.find_element(By.ID, "f-blend")
    b.clear()
    b.send_keys(blend)
    f = d.find_element(By.ID, "f-frames")
    f.clear()
    f.send_keys(frames)
    Select(d.find_element(By.ID, "f-format")).select_by_visible_text("PNG")
    d.find_element(By.ID, "f-go").click()
    ok = wait(d, lambda: js(d, "document.getElementById('submit-msg').textContent") != "", 10)
    msg = js(d, "document.getElementById('submit-msg').textContent")
    jid = msg[len("queued as "):] if ok and msg.startswith("queued as ") else None
    if jid:  # the message stays: clear it so that the next submit waits for its own
        d.execute_script("document.getElementById('submit-msg').textContent=''")
    return jid, msg


def part_serve(d):
    d.get(URL + "/")
    check(wait(d, lambda: js(d, "!document.getElementById('app').hidden") and
               js(d, "document.getElementById('conn').textContent") == "live", 20),
          "the page loads and goes live")
    check(d.find_element(By.ID, "mode").text.startswith("service"), "mode badge says service")
    scenes = js(d, "Array.from(document.querySelectorAll('#scenes option')).map(o=>o.value)")
    check("shot.blend" in scenes and XSS + ".blend" in scenes,
          "the scene list comes from the blend root (%d scenes)" % len(scenes))
    shot(d, "01-empty")

    # A job submitted through the form appears and finishes; its cells turn to done.
    jid, msg = submit(d, "shot.blend", "1-40")
    check(jid is not None, "the form submits a job (%s)" % msg)
    check(wait(d, lambda: job_row(d, jid) is not None, 10), "the job appears in the list")
    check(wait(d, lambda: row_state(d, jid) == "running", 20), "it is shown running")
    t0, b0 = time.monotonic(), js(d, "drenderTest.stats().bytes")
    shot(d, "02-running")
    check(wait(d, lambda: row_state(d, jid) == "done", 60), "it is shown done")
    t1, b1 = time.monotonic(), js(d, "drenderTest.stats().bytes")
    note("bytes/s pulled while the job ran: %.0f (%d bytes in %.1f s)" %
         ((b1 - b0) / max(t1 - t0, 1e-3), b1 - b0, t1 - t0))
    check(wait(d, lambda: js(d, "drenderTest.gridInfo().counts[2]") == 40, 10),
          "the job's grid shows 40 done cells")
    check(not js(d, "drenderTest.gridInfo().approx") and
          any(t["full"] for t in js(d, "drenderTest.framesTimes()")),
          "from per-frame state (GET /jobs/<id>/frames), not from counts")
    check(js(d, "document.getElementById('job-summary').textContent").find("summary") >= 0,
          "the job's summary is shown when it ends")
    nodes = js(d, "document.querySelectorAll('#nodes-body tr').length")
    check(nodes == 2, "the node table lists the 2 render nodes (%d)" % nodes)
    # Hover and click a cell: details, and the frame itself as preview in the detail panel.
    d.execute_script("var c=document.getElementById('grid'),r=c.getBoundingClientRect();"
                     "c.dispatchEvent(new MouseEvent('mousemove',{clientX:r.left+2,clientY:r.top+2}));"
                     "c.dispatchEvent(new MouseEvent('click',{clientX:r.left+2,clientY:r.top+2}));")
    check(wait(d, lambda: js(d, "!document.getElementById('tip').hidden") and
               js(d, "!document.getElementById('detail').hidden"), 5), "hover and click show a cell")
    check(wait(d, lambda: js(d, "(function(){var i=document.getElementById('detail-img');"
                                "return !i.hidden && i.complete && i.naturalWidth})()") == 16, 10),
          "its thumbnail loads (the fake Blender's 16 px preview)")
    shot(d, "03-done")

    # Cancel from the list.
    jid2, msg = submit(d, "shot.blend", "1-400")
    check(jid2 is not None, "a long job is submitted (%s)" % msg)
    d.get(URL + "/")  # the list, from a fresh load (survives a reload)
    check(wait(d, lambda: row_state(d, jid2) == "running", 30), "the long job runs")
    btn = d.find_elements(By.CSS_SELECTOR, 'button[data-cancel="%s"]' % jid2)
    check(len(btn) == 1, "it has a cancel button")
    if btn:
        btn[0].click()
    check(wait(d, lambda: row_state(d, jid2) == "cancelled", 30), "cancel works: shown cancelled")
    shot(d, "04-cancelled")

    # The XSS scene renders as text.
    # (frame 900 fails on purpose: FAKE_BLENDER_FAIL in dashboard.sh; its error text shows too)
    jid3, msg = submit(d, XSS + ".blend", "1-3,900")
    check(jid3 is not None, "a job on the scene named like an <img> tag is submitted (%s)" % msg)
    check(wait(d, lambda: row_state(d, jid3) == "failed", 30), "it ends failed (frame 900)")
    d.get(URL + "/#job=" + jid3)
    check(wait(d, lambda: "frame 900" in js(d, "document.getElementById('job-summary').textContent"),
               10), "its failed frame and error are shown in the job's summary")
    cell = js(d, "document.querySelector('#jobs-body tr[data-id=\"%s\"] td.scene').textContent" % jid3)
    check(cell == XSS, "its scene name shows as text (%r)" % cell)
    check(js(d, "document.querySelectorAll('main img:not(#detail-img)').length") == 0,
          "no <img> element was made from it")
    try:
        d.switch_to.alert
        alerted = True
    except NoAlertPresentException:
        alerted = False
    check(not alerted, "no script ran from it (no alert)")
    shot(d, "05-xss")
    errs = console_errors(d)
    check(not errs, "no console errors (%s)" % "; ".join(errs)[:300])

    # 10,000 frames: the time to apply one update to the grid in the browser.
    d.get(URL + "/#job=" + jid)
    wait(d, lambda: js(d, "!document.getElementById('job').hidden"), 10)
    first = js(d, "drenderTest.synthetic(10000)")
    ups = [js(d, "drenderTest.update(50)") for _ in range(40)]
    big = [js(d, "drenderTest.update(2000)") for _ in range(10)]
    full = [js(d, "drenderTest.full()") for _ in range(10)]
    gi = js(d, "drenderTest.gridInfo()")
    check(gi["n"] == 10000, "the grid holds 10,000 cells (%d px cells, %d columns)" %
          (gi["cell"], gi["cols"]))
    note("10,000-frame grid: first load %.1f ms; update of 50 cells median %.2f ms (max %.2f); "
         "update of 2,000 cells median %.2f ms; full redraw median %.2f ms" %
         (first, statistics.median(ups), max(ups), statistics.median(big), statistics.median(full)))
    check(statistics.median(ups) < 16 and statistics.median(full) < 100,
          "updates fit in a frame (50 cells < 16 ms, full redraw < 100 ms)")
    shot(d, "06-grid-10000")

    # A dropped connection: the server restarts (dashboard.sh does it on "RESTART"); the page
    # reconnects by itself, sees a new epoch and reloads the journaled jobs.
    d.get(URL + "/")
    wait(d, lambda: js(d, "document.getElementById('conn').textContent") == "live", 20)
    epoch = js(d, "drenderTest.stats().epoch")
    print("RESTART", flush=True)
    check(wait(d, lambda: js(d, "drenderTest.stats().epoch") not in (epoch, "") and
               js(d, "document.getElementById('conn').textContent") == "live", 60),
          "the page reconnects to a restarted server by itself")
    check(wait(d, lambda: job_row(d, jid) is not None and row_state(d, jid) == "done", 20),
          "and lists the jobs again")


def part_token(d):
    d.get(URL + "/")
    check(wait(d, lambda: js(d, "!document.getElementById('login').hidden"), 20),
          "with --token the page loads and asks for the token")
    check(js(d, "document.getElementById('app').hidden"), "nothing else is shown without it")
    code = d.execute_async_script(
        "var cb=arguments[0];fetch('/status',{cache:'no-store'}).then(r=>cb(r.status))")
    check(code == 401, "the data routes answer 401 without it (%s)" % code)
    shot(d, "07-token-ask")
    d.find_element(By.ID, "login-token").send_keys("wrong-" + TOKEN)
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    check(wait(d, lambda: js(d, "document.getElementById('login-msg').textContent").find("refused") >= 0,
               10), "a wrong token is refused")
    d.find_element(By.ID, "login-token").send_keys(TOKEN)
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    check(wait(d, lambda: js(d, "!document.getElementById('app').hidden") and
               js(d, "document.getElementById('conn').textContent") == "live", 20),
          "with the token the page works")
    check(TOKEN not in d.current_url and not d.get_cookies(),
          "the token is in neither the URL nor a cookie")
    jid, msg = submit(d, "shot.blend", "1-4")
    check(jid is not None and wait(d, lambda: row_state(d, jid) == "done", 30),
          "a job submitted with the token finishes (%s)" % msg)
    shot(d, "08-token-ok")
    errs = console_errors(d, allow=("401",))
    check(not errs, "no console errors besides the expected 401s (%s)" % "; ".join(errs)[:300])


def part_http(d):
    d.get(URL + "/")
    check(wait(d, lambda: js(d, "!document.getElementById('app').hidden"), 20),
          "--http serves the page")
    check(d.find_element(By.ID, "mode").text.startswith("read-only") and
          js(d, "document.getElementById('submit').hidden"),
          "read-only: no submit form")
    check(wait(d, lambda: js(d, "document.querySelectorAll('#jobs-body tr').length") >= 1, 20),
          "the batch is listed")
    check(js(d, "document.querySelectorAll('button[data-cancel]').length") == 0,
          "read-only: no cancel button")
    shot(d, "09-http-read-only")


def open_job(d, jid):
    d.get(URL + "/#job=" + jid)
    return wait(d, lambda: js(d, "!document.getElementById('job').hidden"), 10)


def part_big(d):
    d.get(URL + "/")
    wait(d, lambda: js(d, "document.getElementById('conn').textContent") == "live", 20)
    jid, msg = submit(d, "shot.blend", "1-10000")
    check(jid is not None, "a 10,000-frame job is submitted (%s)" % msg)
    open_job(d, jid)
    check(wait(d, lambda: js(d, "drenderTest.gridInfo().n") == 10000 and
               not js(d, "drenderTest.gridInfo().approx"), 60),
          "its grid gets 10,000 cells from the server's per-frame state")
    b0, t0 = js(d, "drenderTest.stats().bytes"), time.monotonic()
    check(wait(d, lambda: len([t for t in js(d, "drenderTest.framesTimes()") if not t["full"]
                               and t["cells"] > 0]) >= 10, 120),
          "10 updates of changed cells arrive while it renders")
    b1, t1 = js(d, "drenderTest.stats().bytes"), time.monotonic()
    times = js(d, "drenderTest.framesTimes()")
    full = [t["ms"] for t in times if t["full"]]
    ups = [t for t in times if not t["full"] and t["cells"] > 0]
    ms = [t["ms"] for t in ups]
    note("10,000 frames on real data: full answer applied in %.1f ms; an update (median %d "
         "cells) applied and drawn in median %.2f ms, max %.2f ms (%d updates); the page pulled "
         "%.0f bytes/s" % (full[0] if full else -1, statistics.median([t["cells"] for t in ups]),
                           statistics.median(ms), max(ms), len(ms),
                           (b1 - b0) / max(t1 - t0, 1e-3)))
    check(statistics.median(ms) < 16, "an update fits in a frame (median < 16 ms)")
    shot(d, "10-big-real")
    d.get(URL + "/")
    btn = []
    wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, 'button[data-cancel="%s"]' % jid)) == 1, 10)
    btn = d.find_elements(By.CSS_SELECTOR, 'button[data-cancel="%s"]' % jid)
    if btn:
        btn[0].click()
    check(wait(d, lambda: row_state(d, jid) == "cancelled", 30), "and it is cancelled")


def part_demo(d):
    d.set_window_size(1280, 1150)
    d.get(URL + "/")
    wait(d, lambda: js(d, "document.getElementById('conn').textContent") == "live", 20)
    jid, msg = submit(d, "demo.blend", "1-20")
    check(jid is not None, "the demo scene is submitted (%s)" % msg)
    open_job(d, jid)
    check(wait(d, lambda: js(d, "drenderTest.gridInfo().counts[2]") >= 4, 600),
          "real Blender renders frames of it")
    # a finished frame's thumbnail in the detail panel
    d.execute_script("var c=document.getElementById('grid'),r=c.getBoundingClientRect();"
                     "c.dispatchEvent(new MouseEvent('click',{clientX:r.left+2,clientY:r.top+2}));")
    check(wait(d, lambda: js(d, "(function(){var i=document.getElementById('detail-img');"
                                "return !i.hidden && i.complete && i.naturalWidth})()") == 160, 20),
          "the thumbnail Blender made is 160 px wide")
    d.execute_script("window.scrollTo(0,0)")
    d.save_screenshot(os.path.join(OUT, "demo.png"))
    note("screenshot of the demo render: %s" % os.path.join(OUT, "demo.png"))
    d.get(URL + "/")
    wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, 'button[data-cancel="%s"]' % jid)) == 1, 10)
    for b in d.find_elements(By.CSS_SELECTOR, 'button[data-cancel="%s"]' % jid):
        b.click()
    wait(d, lambda: row_state(d, jid) in ("cancelled", "done"), 60)


def main():
    d = browser()
    try:
        {"serve": part_serve, "token": part_token, "http": part_http, "big": part_big,
         "demo": part_demo}[PART](d)
    except Exception as e:  # a crash in the driver is a failure, with a screenshot
        check(False, "the %s checks ran to the end (%s: %s)" % (PART, type(e).__name__, str(e)[:200]))
        try:
            shot(d, "failure-" + PART)
        except Exception:
            pass
    finally:
        d.quit()


if __name__ == "__main__":
    main()
