"""The platform in a real browser: a participant from screening to a signed form, every role's
home page (screenshots, tablet width, 200 % zoom), and a week-13 spirometry form entered with
the keyboard alone.

Screenshots go to ``test-artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from tests.browser.conftest import skip_without_browser
from tests.conftest import PASSWORD

skip_without_browser()

pytestmark = pytest.mark.django_db(transaction=True)

def totp(user) -> str:  # noqa: ANN001
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="browser test", confirmed=True)
    return f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"


def open_as(browser, live_server, user, *, width: int = 1280, height: int = 900, locale: str = "en-GB"):  # noqa: ANN001, ANN201
    """A fresh browser context signed in as ``user`` through the sign-in page (and the second factor)."""
    context = browser.new_context(base_url=live_server.url, locale=locale, timezone_id="Europe/Moscow",
                                  viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    page = context.new_page()
    token = totp(user) if user.needs_two_factor() else None  # an enrolled authenticator
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    if token:
        page.wait_for_url(re.compile(r"/accounts/2fa/verify/"))
        page.fill("input[name=token]", token)
        page.click("main button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == "/" and not urlsplit(url).query)
    return page


def date_keys(browser, day) -> str:  # noqa: ANN001
    """The digits to type for ``day`` into a native date input, in the order the browser lays
    out its segments (a person reads the order off the widget; chromium without its locale
    pack shows mm/dd/yyyy whatever the page's language)."""
    context = browser.new_context()
    probe = context.new_page()
    probe.set_content('<input id="d" type="date">')
    probe.focus("#d")
    probe.keyboard.type("01022003")
    order = {"2003-01-02": "%m%d%Y", "2003-02-01": "%d%m%Y"}.get(probe.input_value("#d"), "%Y%m%d")
    context.close()
    return day.strftime(order)


def message(page) -> str:  # noqa: ANN001
    return page.locator("main .messages").inner_text()


def fits(page) -> bool:  # noqa: ANN001
    """No horizontal scrolling of the page itself (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_screen_randomize_enter_query_answer_sign(browser, live_server, make_user, screenshots):
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.crfs.models import FormInstance, FormStatus
    from ildtrial.edc.participants.models import Participant
    from ildtrial.edc.queries.models import Query
    from ildtrial.edc.randomization import services as randomization
    from tests.edc.enrolment_helpers import shifted_example, store_screening_forms

    coordinator, investigator = make_user("study_coordinator"), make_user("investigator")
    monitor, statistician = make_user("monitor"), make_user("unblinded_statistician", sites=())
    with acting_as(statistician):
        randomization.generate(statistician, seed=7)
    today = timezone.localdate()
    screened = today - timedelta(days=3)

    # the coordinator opens a screening attempt and records consent
    coord = open_as(browser, live_server, coordinator)
    coord.goto("/participants/new/")
    coord.select_option("#id_site", "MOW01")
    coord.fill("#id_screening_date", screened.isoformat())
    coord.click("main form button[type=submit]")
    coord.wait_for_url(re.compile(r"/participants/\d+/$"))
    participant = Participant.objects.get(pk=int(coord.url.rstrip("/").split("/")[-1]))
    coord.fill("#id_form_version", "v2.1")
    coord.fill("#id_signed_at", f"{screened.isoformat()}T09:00")
    coord.click("main button:has-text('Record consent')")
    assert "Consent recorded." in message(coord)

    # screening forms stored as the form pages store them; the coordinator evaluates eligibility
    store_screening_forms(participant, shifted_example(screened, DX={"diagnosis_group": "CTD_ILD"}))
    coord.reload()
    coord.click("main button:has-text('Evaluate eligibility now')")
    assert "Eligibility evaluated." in message(coord)

    # the investigator signs the eligibility verdict
    inv = open_as(browser, live_server, investigator)
    inv.goto(f"/participants/{participant.pk}/")
    inv.fill("form[action$='/sign-eligibility/'] input[name=password]", PASSWORD)
    inv.click("form[action$='/sign-eligibility/'] button[type=submit]")
    assert "Eligibility signed." in message(inv)

    # the coordinator randomizes, records day 0 and enters the vital signs of that visit
    coord.reload()
    coord.click("main button:has-text('Randomize now')")
    assert "Randomization number" in message(coord)
    coord.goto(f"/visits/participant/{participant.pk}/")
    coord.fill("#d-C1A", today.isoformat())
    coord.click("form:has(#d-C1A) button:has-text('Save')")
    assert "Saved." in message(coord)
    coord.goto(f"/data/participant/{participant.pk}/visit/C1A/VS/new/")
    coord.evaluate("window.samePage = true")
    values = {"temperature_c": "36,7", "heart_rate": "78", "systolic_bp": "128", "diastolic_bp": "80",
              "respiratory_rate": "18", "spo2": "94"}
    coord.fill("#f-assessment_date", today.isoformat())
    for code, value in values.items():
        coord.fill(f"#f-{code}", value)
    coord.click("form.crf button[type=submit]")
    coord.wait_for_url(re.compile(r"/visit/C1A/VS/1/$"))
    assert "Saved." in message(coord)
    assert coord.evaluate("window.samePage") is True  # saved without reloading the page
    vs = FormInstance.objects.get(participant=participant, visit__code="C1A", form_code="VS")
    assert vs.data["temperature_c"] == 36.7 and vs.status == FormStatus.COMPLETE

    # tablet width and 200 % zoom (a 640-pixel window): the form still fits
    coord.set_viewport_size({"width": 768, "height": 1000})
    assert fits(coord)
    coord.set_viewport_size({"width": 640, "height": 900})
    assert fits(coord)
    coord.screenshot(path=screenshots / "form-VS-640px.png", full_page=True)

    # the monitor questions the temperature
    mon = open_as(browser, live_server, monitor)
    form_url = f"/data/participant/{participant.pk}/visit/C1A/VS/1/"
    mon.goto(form_url)
    mon.select_option("#q-field", "temperature_c")
    mon.fill("#q-text", "Please check the temperature against the nursing chart.")
    mon.click("main button:has-text('Raise query')")
    assert "Query raised." in message(mon)

    # the coordinator finds it on the home page and answers
    coord.set_viewport_size({"width": 1280, "height": 900})
    coord.goto("/")
    panel = coord.locator("#panel-queries-to-answer")
    assert "nursing chart" in panel.inner_text()
    panel.locator("a", has_text="VS").first.click()
    coord.fill("main .query input[name=text]", "36.7 °C as in the nursing chart.")
    coord.click("main .query button[value=answer]")
    assert "Query updated." in message(coord)

    # the monitor closes the query and verifies the key field against the source
    mon.goto(form_url)
    mon.fill("main .query input[name=text]", "Confirmed.")
    mon.click("main .query button[value=close]")
    assert "Query updated." in message(mon)
    mon.click("main button:has-text('Record source verification')")
    assert "Source verification recorded." in message(mon)
    assert Query.objects.get(form=vs).state == "closed"

    # the investigator signs the form from the home page's list
    inv.goto("/")
    inv.locator("#panel-forms-to-sign a", has_text="VS").click()
    inv.fill("#sign-pw", PASSWORD)
    inv.click("main button:has-text('Sign')")
    assert "Signed." in message(inv)
    vs.refresh_from_db()
    assert vs.status == FormStatus.SIGNED
    inv.goto("/")
    assert "No form is waiting for your signature." in inv.locator("#panel-forms-to-sign").inner_text()
    for page in (coord, inv, mon):
        page.context.close()


def test_every_role_home_page_screenshots_tablet_and_zoom(browser, live_server, make_user, screenshots):
    from tests.edc.test_dashboards import ROLES, add_participants, make_team

    team = make_team(make_user)
    add_participants(team, 2)
    for role in ROLES:
        page = open_as(browser, live_server, team[role])
        assert page.locator("main h1").count() == 1
        page.screenshot(path=screenshots / f"home-{role}.png", full_page=True)
        for width in (768, 640):
            page.set_viewport_size({"width": width, "height": 900})
            assert fits(page), (role, width)
        if role == "study_coordinator":
            page.screenshot(path=screenshots / f"home-{role}-640px.png", full_page=True)
            page.select_option("#lang-select", "ru")
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "ru"
            assert "Формы к заполнению" in page.locator("main").inner_text()
            page.screenshot(path=screenshots / f"home-{role}-ru.png", full_page=True)
        page.context.close()


def test_keyboard_only_entry_of_a_week13_spirometry_form(browser, live_server, make_user, screenshots):
    """Tab, typing and Enter only: the first field is focused, a refused save puts the focus on
    the field to correct, live checks and % predicted appear on leaving a field, and the form
    is saved without the page reloading."""
    from ildtrial.edc.audit.context import acting_as
    from ildtrial.edc.crfs.models import FormInstance
    from ildtrial.edc.randomization import services as randomization
    from ildtrial.edc.visits import services as visits
    from tests.edc.enrolment_helpers import eligible_participant

    coordinator = make_user("study_coordinator", language="ru")  # the site works in Russian
    investigator, statistician = make_user("investigator"), make_user("unblinded_statistician", sites=())
    with acting_as(statistician):
        randomization.generate(statistician, seed=7)
    today = timezone.localdate()
    p = eligible_participant(coordinator, investigator, screening_date=today - timedelta(days=100))
    with acting_as(coordinator):
        randomization.randomize(coordinator, p)
    p.refresh_from_db()
    day0 = p.screening_date + timedelta(days=7)
    with acting_as(None, reason="test: randomized before day 0"):
        p.randomized_at = timezone.now() - timedelta(days=95)
        p.save()
    with acting_as(coordinator):
        visits.record_visit(coordinator, p, "C1A", day0)
        visits.record_visit(coordinator, p, "C1B", day0 + timedelta(days=7))
        w13 = visits.record_visit(coordinator, p, "W13", day0 + timedelta(days=91))

    keys = date_keys(browser, w13.actual_date)
    page = open_as(browser, live_server, coordinator, locale="ru-RU")
    page.goto(f"/data/participant/{p.pk}/visit/W13/SPIRO/new/")
    page.evaluate("window.samePage = true")
    keyboard = page.keyboard

    def focused() -> str:
        return page.evaluate("document.activeElement && document.activeElement.id")

    assert focused() == "f-test_date"  # the first field, ready for typing
    keyboard.type(keys)  # the date segments, as the widget shows them
    for _ in range(3):  # out of the date widget: its calendar button is a tab stop of its own
        keyboard.press("Tab")
        if focused() != "f-test_date":
            break
    assert focused() == "f-fev1_l"
    keyboard.type("2,50")
    keyboard.press("Tab")
    assert focused() == "f-fvc_l"
    keyboard.type("2,08")
    keyboard.press("Tab")  # leaving FVC checks the form: FEV1 above FVC is flagged on FEV1
    page.wait_for_function("document.getElementById('m-fev1_l').textContent.includes('ФЖЕЛ')")
    keyboard.press("Shift+Tab")
    assert focused() == "f-fvc_l"
    keyboard.press("Enter")  # save: refused, the focus goes to the field to correct
    page.wait_for_function("document.activeElement && document.activeElement.id === 'f-fev1_l'")
    assert page.locator("#f-fev1_l").get_attribute("aria-invalid") == "true"
    assert "ОФВ1" in page.locator("#error-summary").inner_text()
    assert not FormInstance.objects.filter(visit=w13, form_code="SPIRO").exists()
    keyboard.press("Control+A")
    keyboard.type("1,74")
    keyboard.press("Tab")  # the check clears the message and shows % predicted as typed
    page.wait_for_function("document.getElementById('m-fev1_l').textContent === ''")
    assert page.locator("#error-summary").count() == 0  # corrected: the summary of the refused save is gone
    page.wait_for_selector("[data-derived=fvc_percent_predicted]")
    derived = page.locator("#derived-live").inner_text()
    assert "ФЖЕЛ, % от должного" in derived and re.search(r"\d+,\d %", derived)
    assert page.locator("#f-fvc_l + .unit").inner_text() == "л"
    page.screenshot(path=screenshots / "form-SPIRO-keyboard-ru.png", full_page=True)
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/visit/W13/SPIRO/1/$"))
    assert "Сохранено." in page.locator("main .messages").inner_text()
    assert page.evaluate("window.samePage") is True
    assert page.evaluate("document.activeElement.closest('.messages') !== null")
    spiro = FormInstance.objects.get(visit=w13, form_code="SPIRO")
    assert spiro.data["fev1_l"] == 1.74 and spiro.data["fvc_l"] == 2.08
    assert spiro.data["test_date"] == w13.actual_date.isoformat()
    page.context.close()
