#!/usr/bin/python3
"""The page of `blackbox serve`, checked in headless Chromium over the demo's journal.

Runs the demo tour (segfault, uncaught exception, hang, leak) under
blackbox-watchdog, opens the page while the tour runs, and checks in the
rendered DOM: a crash journaled while the page is open appears without a
reload; every run and every crash is shown (as many as `blackbox crashes
--json` lists); clicking the segfault shows the frame
demo::route_order_with_corrupt_book; the memory line rises in the leak run.
Then, over a journal of its own, a child leaking 20 MB/s under --max-memory:
each memory forecast the watchdog journaled is drawn on the memory chart.
Last, an application's own forecast (its health monitor's, no watchdog) is
drawn too, and the state panel lists it while it holds.
Exit 77 (skipped) when Chromium, its driver or selenium is missing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    print("skipped: python3-selenium is not installed")
    sys.exit(SKIP)


def wait_for(what, check, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--screenshot", required=True)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        print("skipped: chromium or chromium-driver is not installed")
        return SKIP
    tool = os.path.join(args.bin, "blackbox")
    watchdog_bin = os.path.join(args.bin, "blackbox-watchdog")
    demo = os.path.join(args.bin, "blackbox-demo")
    leaker = os.path.join(args.bin, "watchdog_test_child")
    crashy = os.path.join(args.bin, "crashy_child")
    for b in (tool, watchdog_bin, demo, leaker, crashy):
        if not os.access(b, os.X_OK):
            print(f"skipped: {b} is not built")
            return SKIP

    work = tempfile.mkdtemp(prefix="blackbox-browser.")
    journal = os.path.join(work, "journal")
    env = dict(os.environ, BLACKBOX_JOURNAL=journal, TZ="UTC")

    def blackbox(*argv):
        r = subprocess.run([tool, "--no-pager", *argv], env=env, capture_output=True, text=True)
        return r.stdout

    def crashes():
        return [json.loads(l) for l in blackbox("crashes", "--json").splitlines() if l.strip()]

    # The demo's own settings (scripts/demo.sh).
    watchdog = subprocess.Popen(
        [watchdog_bin, "--state-dir", os.path.join(work, "watchdog"), "--restart-delay", "0.5",
         "--max-restarts", "10", "--watchdog-timeout", "3", "--stop-timeout", "2",
         "--health-check-interval", "0.5", "--max-memory", "120", "--limit-cycles", "2",
         "--log-file", os.path.join(work, "demo-output.log"), "--",
         demo, "--tour", "--interval-ms", "100"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    driver = None
    try:
        wait_for("the first crash", lambda: os.path.isdir(journal) and len(crashes()) >= 1)
        server = subprocess.Popen([tool, "serve", "--listen", "127.0.0.1:0"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url

        options = Options()
        options.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
            options.add_argument(a)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.get(url)
        wait_for("the page to load", lambda: driver.execute_script("return document.body.dataset.loaded"))
        on_page = lambda: len(driver.find_elements(By.CSS_SELECTOR, "#crashes li.crash"))
        first = on_page()
        # Live: a crash journaled now appears without a reload.
        wait_for("a new crash on the open page", lambda: on_page() > first)

        wait_for("the leak's memory restart",
                 lambda: '"reason":"memory"' in blackbox("replay", "--type", "restart", "--json"))
        subprocess.run([watchdog_bin, "--stop", "--state-dir", os.path.join(work, "watchdog")],
                       env=env, capture_output=True)
        watchdog.wait(timeout=20)

        want = crashes()
        # Each restart by the watchdog starts a run (the app journals its own view too).
        restarts = len(blackbox("replay", "--stream", "watchdog", "--type", "restart", "--json").splitlines())
        wait_for("every crash on the page", lambda: on_page() == len(want), timeout=5)
        markers = driver.find_elements(By.CSS_SELECTOR, "#timeline .crash-marker")
        assert len(markers) == len(want), (len(markers), len(want))
        # The page polls every second: the last run's end may come a poll later.
        runs = lambda: len(driver.find_elements(By.CSS_SELECTOR, "#timeline rect.run"))
        try:
            wait_for("every run on the page", lambda: runs() == restarts + 1, timeout=5)
        except AssertionError:
            raise AssertionError(f"{runs()} runs on the page, {restarts} restarts journaled")

        # The state panel counts the incidents listed (one per death, not
        # the crash records: the app's capture and the watchdog's both count).
        # (Read in one script: the panel is redrawn on every poll.)
        def panel_incidents():
            return driver.execute_script(
                "const dt = [...document.querySelectorAll('#state dt')].find(e => e.textContent === 'incidents');"
                "return dt ? dt.nextElementSibling.textContent.split(' ')[0] : null")
        try:
            wait_for("the state panel's incidents", lambda: panel_incidents() == str(len(want)), timeout=5)
        except AssertionError:
            raise AssertionError(f"state panel: incidents {panel_incidents()!r}, {len(want)} listed")

        # The run that --stop ended is drawn as a clean stop (the app's own
        # "stopped" comes before the watchdog's exit status 0).
        last_how = lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline rect.run")[-1].get_attribute("data-how")
        try:
            wait_for("the stopped run drawn as a clean stop", lambda: last_how() == "clean", timeout=5)
        except AssertionError:
            raise AssertionError(f"the run ended by --stop is drawn as {last_how()!r}, not 'clean'")

        # Clicking the segfault shows where it happened.
        segv = next(c for c in want if c["signal"] == 11 and c["frames"])
        number = want.index(segv) + 1
        driver.find_element(By.CSS_SELECTOR, f'#crashes li[data-number="{number}"]').click()
        frames = wait_for("the crash's frames", lambda: [
            e.text for e in driver.find_elements(By.CSS_SELECTOR, "#frames li")])
        assert any("demo::route_order_with_corrupt_book" in f for f in frames), frames
        assert driver.current_url.endswith(f"#crash/{number}"), driver.current_url

        # The memory line rises in the leak run (the demo's last, stopped at 120 MB).
        values = []
        for line in driver.find_elements(By.CSS_SELECTOR, "#memory path.series"):
            values += [float(v) for v in line.get_attribute("data-values").split(",") if v]
        assert values and max(values) > 100 and max(values) > 2 * min(values), values

        # The charts' legend names each stream drawn, and the limit lines.
        legend = driver.find_element(By.ID, "chart-legend").text
        for line in driver.find_elements(By.CSS_SELECTOR, "#memory path.series"):
            assert line.get_attribute("data-stream") in legend, (line.get_attribute("data-stream"), legend)
        assert "--max-memory" in legend, legend

        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(args.screenshot)
        print(f"ok: {len(want)} crashes, {restarts + 1} runs; screenshot {args.screenshot}")

        # A memory forecast is drawn on the memory chart. The demo's leak is
        # too fast to forecast (8 MB an order), so a child of the watchdog's
        # tests leaks 20 MB/s under --max-memory 160, in a journal of its own.
        leak = os.path.join(work, "leak-journal")
        subprocess.run([watchdog_bin, "--state-dir", os.path.join(work, "leak-watchdog"), "--journal", leak,
                        "--max-memory", "160", "--max-cpu", "1000", "--health-check-interval", "0.1",
                        "--limit-cycles", "2", "--stop-timeout", "1", "--max-restarts", "0", "--",
                        leaker, "leak", "20", os.path.join(work, "leak-starts")],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        forecasts = [e for e in (json.loads(l) for l in blackbox(
            "--journal", leak, "replay", "--type", "forecast", "--json").splitlines() if l.strip())
                     if not e["cleared"]]
        assert forecasts, "the leaking child got no forecast"
        leak_server = subprocess.Popen([tool, "--journal", leak, "serve", "--listen", "127.0.0.1:0"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            driver.get(leak_server.stdout.readline().strip())
            wait_for("the leak's page to load", lambda: driver.execute_script("return document.body.dataset.loaded"))
            drawn = lambda: driver.find_elements(By.CSS_SELECTOR, "#memory g.forecast")
            wait_for("the forecasts drawn", lambda: len(drawn()) == len(forecasts), timeout=5)
            seconds = sorted(float(g.get_attribute("data-seconds")) for g in drawn())
            assert seconds == sorted(e["seconds_to_limit"] for e in forecasts), (seconds, forecasts)
            assert "forecast" in driver.find_element(By.ID, "chart-legend").text
        finally:
            leak_server.kill()
            leak_server.wait()
        print(f"ok: {len(forecasts)} forecast(s) drawn")

        # The application's own forecast: a blackbox app grows 2 MB every
        # 50 ms against its 400 MB forecast limit; it is killed (-9) once it
        # has journaled a forecast, so that the forecast still holds (a clean
        # stop would clear it).
        app_journal = os.path.join(work, "app-journal")

        def app_forecasts():
            return [e for e in (json.loads(l) for l in blackbox(
                "--journal", app_journal, "replay", "--type", "forecast", "--json").splitlines()
                if l.strip()) if not e["cleared"]]

        app = subprocess.Popen([crashy, "leak", app_journal], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the app's own forecast", app_forecasts, timeout=20)
        finally:
            app.kill()
            app.wait()
        own = app_forecasts()
        assert all(e["stream"] == "app" and e["resource"] == "rss" for e in own), own
        app_server = subprocess.Popen([tool, "--journal", app_journal, "serve", "--listen", "127.0.0.1:0"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            driver.get(app_server.stdout.readline().strip())
            wait_for("the app's page to load", lambda: driver.execute_script("return document.body.dataset.loaded"))
            drawn = lambda: driver.find_elements(By.CSS_SELECTOR, "#memory g.forecast")
            wait_for("the app's forecast drawn", lambda: len(drawn()) == len(own), timeout=5)
            state = {dt.text: dd.text for dt, dd in zip(driver.find_elements(By.CSS_SELECTOR, "#state dt"),
                                                        driver.find_elements(By.CSS_SELECTOR, "#state dd"))}
            assert state.get("forecasts", "").startswith("app: rss "), state
            assert "400 MB limit" in state["forecasts"], state
        finally:
            app_server.kill()
            app_server.wait()
        print(f"ok: the app's own forecast drawn and listed: {state['forecasts']}")
        return 0
    finally:
        if driver:
            driver.quit()
        if server:
            server.kill()
            server.wait()
        if watchdog.poll() is None:
            watchdog.kill()
            watchdog.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
