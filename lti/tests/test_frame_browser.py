"""In Chromium: Glow inside a cross-site LMS iframe whose browser drops its cookies shows a clear
page with a link that opens Glow in a new tab (plain HTTP cookies cannot be SameSite=None, so a
cross-site frame here behaves exactly like a browser blocking third-party cookies)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from lti.tests.platform import LmsPlatform, register

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "screenshots"


def test_a_blocked_frame_shows_a_page_with_a_new_tab_link(live_server, org_admin, browser):
    organization = org_admin.organization
    tool = live_server.url.replace("127.0.0.1", "localhost")  # another site than the LMS
    with LmsPlatform(tool_base=tool) as platform:
        register(platform, organization)
        platform.frame_url = platform.preflight_url(user_id="lms-alice")
        page = browser.new_page()
        page.goto(f"{platform.url}/course")
        frame = page.frame_locator("iframe[title='Glow activity']")
        link = frame.get_by_role("link", name="Open Glow in a new tab")
        link.wait_for(timeout=15000)
        assert link.get_attribute("target") == "_blank"
        assert frame.get_by_role(
            "heading", name="Your browser blocked Glow inside this page"
        ).is_visible()
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "lti-cookies-blocked.png"))
        with page.expect_popup() as popup_info:
            link.click()
        popup = popup_info.value
        popup.wait_for_load_state()
        # The new tab skips the frame check and goes on to the LMS's auth endpoint.
        assert popup.url.startswith(f"{platform.url}/auth")
