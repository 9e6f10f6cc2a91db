from rest_framework.routers import DefaultRouter

from . import setup, views

app_name = "tickets-api"

router = DefaultRouter()
router.register("tickets", views.TicketViewSet, basename="ticket")
# The support set-up (managers write, support reads): tickets/api/setup.py
router.register("calendars", setup.BusinessCalendarViewSet, basename="calendar")
router.register("holidays", setup.HolidayViewSet, basename="holiday")
router.register("sla-policies", setup.SLAPolicyViewSet, basename="sla-policy")
router.register("teams", setup.TeamViewSet, basename="team")

urlpatterns = router.urls
