import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from crm import choices
from crm.models import Company, Consent, Contact, Persona, Segment, Tag
from journeys import services as journeys_services
from journeys.models import Enrollment, Event, Journey, Stage, StageRule, Touchpoint


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=extracted))
        if create:
            self.save()


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class PersonaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Persona
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Persona {n}")


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Faker("company")
    domain = factory.Sequence(lambda n: f"company{n}.example")
    country = "GB"


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    language = choices.Language.EN

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            self.tags.add(*extracted)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    filters = factory.LazyFunction(dict)


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    contact = factory.SubFactory(ContactFactory)
    channel = choices.ConsentChannel.EMAIL
    purpose = choices.ConsentPurpose.MARKETING
    status = choices.ConsentStatus.GRANTED
    source = choices.ConsentSource.FORM
    occurred_at = factory.Faker("date_time_this_year", tzinfo=__import__("datetime").UTC)


# --- journeys ---------------------------------------------------------------------------------------------


class JourneyFactory(factory.django.DjangoModelFactory):
    """JourneyFactory(stages=["lead", "trial", "customer"]) also makes its stages, in that order."""

    class Meta:
        model = Journey
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Journey {n}")
    slug = factory.Sequence(lambda n: f"journey-{n}")
    is_active = True

    @factory.post_generation
    def stages(self, create, extracted, **kwargs):
        if create and extracted:
            for order, slug in enumerate(extracted, start=1):
                StageFactory(journey=self, slug=slug, name=slug.replace("_", " ").title(), order=order)


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    journey = factory.SubFactory(JourneyFactory)
    slug = factory.Sequence(lambda n: f"stage_{n}")
    name = factory.LazyAttribute(lambda s: s.slug.replace("_", " ").title())
    order = factory.Sequence(lambda n: n + 1)  # unique within any journey; gaps are fine


class StageRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StageRule

    stage = factory.SubFactory(StageFactory)
    journey = factory.SelfAttribute("stage.journey")
    event_type = "page_view"
    property_match = factory.LazyFunction(dict)
    forward_only = True
    is_active = True


class TouchpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Touchpoint
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Touchpoint {n}")
    slug = factory.Sequence(lambda n: f"touchpoint-{n}")
    channel = "website"


class EventFactory(factory.django.DjangoModelFactory):
    """Stored directly, as a row; rules run only when a test calls journeys.services.rules_apply."""

    class Meta:
        model = Event

    contact = factory.SubFactory(ContactFactory)
    type = "page_view"
    channel = "website"
    occurred_at = factory.LazyFunction(timezone.now)
    properties = factory.LazyFunction(dict)
    source = "api"


class EnrollmentFactory(factory.django.DjangoModelFactory):
    """Enrolled through journeys.services.enrollment_create, so the ledger holds its first row.
    Default: the seeded "lifecycle" journey at its first stage, now."""

    class Meta:
        model = Enrollment

    contact = factory.SubFactory(ContactFactory)
    journey = factory.LazyFunction(lambda: Journey.objects.get(slug="lifecycle"))
    stage = None
    at = None
    actor = None
    source = "manual"
    reason = ""

    @classmethod
    def _create(cls, model_class, **kwargs):
        return journeys_services.enrollment_create(**kwargs)
