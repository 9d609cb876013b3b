"""Which usage topics a worker reads: the operator's must exist and be stamped by the broker,
a member's that is not is left unread (and read once fixed), new members' are read as they
appear. Pure: the broker's answer (topics and timestamp types) is given."""

from __future__ import annotations

import pytest

from streams.subscription import Subscription, TopicRefused, until_next_watch

LAT, CT = "LogAppendTime", "CreateTime"


def test_the_usage_topic_and_every_stamped_member_topic_are_read_from_the_start():
    subscription = Subscription("gpu.usage")
    found = {"gpu.usage": LAT, "gpu.usage.kddi": LAT, "gpu.usage.sakura": LAT, "other": CT, "gpu.usage.Bad": LAT}
    assert subscription.first(found) == ["gpu.usage", "gpu.usage.kddi", "gpu.usage.sakura"]


@pytest.mark.parametrize("found", [{"gpu.usage": CT}, {"gpu.usage": None}, {}, {"gpu.usage.kddi": LAT}])
def test_a_worker_refuses_a_usage_topic_its_producers_could_date_or_that_is_missing(found):
    with pytest.raises(TopicRefused) as refused:
        Subscription("gpu.usage").first(found)
    assert refused.value.exit_code == 2 and "gpu.usage" in str(refused.value)


def test_on_a_development_broker_producer_times_are_trusted():
    assert Subscription("gpu.usage", trust_producer_time=True).first({"gpu.usage": CT, "gpu.usage.kddi": None}) == [
        "gpu.usage", "gpu.usage.kddi"]


def test_a_members_topic_its_producers_could_date_is_left_unread_until_fixed():
    subscription = Subscription("gpu.usage")
    assert subscription.first({"gpu.usage": LAT, "gpu.usage.kddi": CT, "gpu.usage.sakura": LAT}) == [
        "gpu.usage", "gpu.usage.sakura"]
    assert subscription.refused == {"gpu.usage.kddi": CT}
    assert subscription.update({"gpu.usage": LAT, "gpu.usage.kddi": CT}) == []
    assert subscription.update({"gpu.usage": LAT, "gpu.usage.kddi": LAT}) == ["gpu.usage.kddi"]
    assert subscription.refused == {} and "gpu.usage.kddi" in subscription.read


def test_a_new_members_topic_is_read_once_and_only_once():
    subscription = Subscription("gpu.usage")
    subscription.first({"gpu.usage": LAT})
    assert subscription.update({"gpu.usage": LAT, "gpu.usage.newco": LAT}) == ["gpu.usage.newco"]
    assert subscription.update({"gpu.usage": LAT, "gpu.usage.newco": LAT}) == []


@pytest.mark.parametrize(
    ("now", "wait"),
    [(1_000_000.0, 10.0), (1_000_003.25, 6.75), (1_000_009.999, 0.001), (7.0, 3.0)],
)
def test_every_worker_watches_at_the_same_instants_of_the_clock(now, wait):
    """Workers started at different times list the topics at the same multiples of the
    watch interval, so a new member's topic makes the group resubscribe once."""
    assert until_next_watch(now, 10.0) == pytest.approx(wait)
    assert (now + until_next_watch(now, 10.0)) % 10.0 == pytest.approx(0.0, abs=1e-6)
