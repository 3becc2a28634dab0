"""The per-sample store record survives a round trip through a log's JSON."""

import json

from inspect_ai.util import Store

from userlm_plugin.recorder import ConversationRecorder
from userlm_plugin.records import Conversation, conversation_from_store
from userlm_plugin.turns import EndReason, Rejection, RejectReason, StopReason, TurnRecord


def test_conversation_round_trips_through_log_json() -> None:
    store = Store()
    recorder = ConversationRecorder(store, "userlm")
    recorder.user_turn(
        TurnRecord(
            index=1,
            simulator="userlm",
            text="need a sort fn",
            shard_id=2,
            rejected=[Rejection(text="I can help", reason=RejectReason.TOO_SHORT)],
        )
    )
    recorder.user_turn(TurnRecord(index=2, simulator="userlm", end_reason=EndReason.END_TOKEN))
    recorder.stop(StopReason.USER_ENDED)
    live = Conversation(store=store)
    as_logged = json.loads(json.dumps(dict(live.store.items()), default=lambda o: o.model_dump(mode="json")))

    back = conversation_from_store(as_logged)
    assert back.user_turns == 1 and back.revealed_shards == [2]
    assert back.turns[0].rejected[0].reason is RejectReason.TOO_SHORT
    assert back.turns[1].ended and back.turns[1].text is None
    assert back.stop_reason.value == "user_ended" and back.end_reason is EndReason.END_TOKEN
