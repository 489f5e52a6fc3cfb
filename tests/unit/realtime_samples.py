# ruff: noqa: E501
# Frames are kept verbatim, one JSON message per line, as a sideband would receive them.
"""Recorded sideband sequences (server events as JSON text) for the realtime unit tests."""

from __future__ import annotations


def _frames(block: str) -> list[str]:
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


GA_CALL = _frames(
    """
{"type":"session.created","event_id":"event_001","session":{"type":"realtime","object":"realtime.session","id":"sess_u0_Dbpi8nhak5eLjQZ73yhAy","model":"gpt-realtime-1.5","output_modalities":["audio"]}}
{"type":"session.updated","event_id":"event_002","session":{"type":"realtime","object":"realtime.session","id":"sess_u0_Dbpi8nhak5eLjQZ73yhAy","instructions":"Be brief."}}
{"type":"input_audio_buffer.speech_started","event_id":"event_003","audio_start_ms":820,"item_id":"item_u1"}
{"type":"input_audio_buffer.speech_stopped","event_id":"event_004","audio_end_ms":2410,"item_id":"item_u1"}
{"type":"input_audio_buffer.committed","event_id":"event_005","previous_item_id":null,"item_id":"item_u1"}
{"type":"conversation.item.added","event_id":"event_006","previous_item_id":null,"item":{"id":"item_u1","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}
{"type":"conversation.item.done","event_id":"event_007","previous_item_id":null,"item":{"id":"item_u1","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}
{"type":"response.created","event_id":"event_008","response":{"object":"realtime.response","id":"resp_1","status":"in_progress","output":[]}}
{"type":"rate_limits.updated","event_id":"event_009","rate_limits":[{"name":"requests","limit":1000,"remaining":999,"reset_seconds":0.06},{"name":"tokens","limit":40000,"remaining":38800,"reset_seconds":1.8}]}
{"type":"response.output_item.added","event_id":"event_010","response_id":"resp_1","output_index":0,"item":{"id":"item_a1","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}
{"type":"conversation.item.added","event_id":"event_011","previous_item_id":"item_u1","item":{"id":"item_a1","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}
{"type":"response.content_part.added","event_id":"event_012","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}
{"type":"output_audio_buffer.started","event_id":"event_013","response_id":"resp_1"}
{"type":"response.output_audio_transcript.delta","event_id":"event_014","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"delta":"Yes — I hear you 👍"}
{"type":"response.output_audio.delta","event_id":"event_015","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"delta":"AAAAAAAAAAAAAAAAAAAAAA=="}
{"type":"conversation.item.input_audio_transcription.delta","event_id":"event_016","item_id":"item_u1","content_index":0,"delta":"Hi, can you he"}
{"type":"response.output_audio_transcript.delta","event_id":"event_017","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"delta":"🏽 clea"}
{"type":"conversation.item.input_audio_transcription.delta","event_id":"event_018","item_id":"item_u1","content_index":0,"delta":"ar me?"}
{"type":"response.output_audio_transcript.delta","event_id":"event_019","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"delta":"rly."}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_020","item_id":"item_u1","content_index":0,"transcript":"Hi, can you hear me?","usage":{"type":"duration","seconds":2}}
{"type":"response.output_audio.done","event_id":"event_021","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0}
{"type":"response.output_audio_transcript.done","event_id":"event_022","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"transcript":"Yes — I hear you 👍🏽 clearly."}
{"type":"response.content_part.done","event_id":"event_023","response_id":"resp_1","item_id":"item_a1","output_index":0,"content_index":0,"part":{"type":"audio","transcript":"Yes — I hear you 👍🏽 clearly."}}
{"type":"response.output_item.done","event_id":"event_024","response_id":"resp_1","output_index":0,"item":{"id":"item_a1","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Yes — I hear you 👍🏽 clearly."}]}}
{"type":"conversation.item.done","event_id":"event_025","previous_item_id":"item_u1","item":{"id":"item_a1","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Yes — I hear you 👍🏽 clearly."}]}}
{"type":"response.done","event_id":"event_026","response":{"object":"realtime.response","id":"resp_1","status":"completed","output":[]}}
{"type":"output_audio_buffer.stopped","event_id":"event_027","response_id":"resp_1"}
{"type":"input_audio_buffer.speech_started","event_id":"event_028","audio_start_ms":5100,"item_id":"item_u2"}
{"type":"input_audio_buffer.speech_stopped","event_id":"event_029","audio_end_ms":6900,"item_id":"item_u2"}
{"type":"input_audio_buffer.committed","event_id":"event_030","previous_item_id":"item_a1","item_id":"item_u2"}
{"type":"conversation.item.added","event_id":"event_031","previous_item_id":"item_a1","item":{"id":"item_u2","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_032","item_id":"item_u2","content_index":0,"transcript":"Please run the tests.","usage":{"type":"duration","seconds":2}}
{"type":"response.created","event_id":"event_033","response":{"object":"realtime.response","id":"resp_2","status":"in_progress","output":[]}}
{"type":"conversation.item.added","event_id":"event_034","previous_item_id":"item_u2","item":{"id":"item_a2","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}
{"type":"response.output_audio_transcript.delta","event_id":"event_035","response_id":"resp_2","item_id":"item_a2","output_index":0,"content_index":0,"delta":"On it, starting"}
{"type":"response.output_audio_transcript.delta","event_id":"event_036","response_id":"resp_2","item_id":"item_a2","output_index":0,"content_index":0,"delta":" the tests now."}
{"type":"response.output_audio_transcript.done","event_id":"event_037","response_id":"resp_2","item_id":"item_a2","output_index":0,"content_index":0,"transcript":"On it, starting the tests now."}
{"type":"conversation.item.done","event_id":"event_038","previous_item_id":"item_u2","item":{"id":"item_a2","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"On it, starting the tests now."}]}}
{"type":"response.output_item.added","event_id":"event_039","response_id":"resp_2","output_index":1,"item":{"id":"item_fc1","object":"realtime.item","type":"function_call","status":"in_progress","call_id":"call_tests","name":"background_agent","arguments":""}}
{"type":"conversation.item.added","event_id":"event_040","previous_item_id":"item_a2","item":{"id":"item_fc1","object":"realtime.item","type":"function_call","status":"in_progress","call_id":"call_tests","name":"background_agent","arguments":""}}
{"type":"response.function_call_arguments.delta","event_id":"event_041","response_id":"resp_2","item_id":"item_fc1","output_index":1,"call_id":"call_tests","delta":"{\\"prompt\\":\\"Please run"}
{"type":"response.function_call_arguments.delta","event_id":"event_042","response_id":"resp_2","item_id":"item_fc1","output_index":1,"call_id":"call_tests","delta":" the tests.\\"}"}
{"type":"response.function_call_arguments.done","event_id":"event_043","response_id":"resp_2","item_id":"item_fc1","output_index":1,"call_id":"call_tests","name":"background_agent","arguments":"{\\"prompt\\":\\"Please run the tests.\\"}"}
{"type":"response.output_item.done","event_id":"event_044","response_id":"resp_2","output_index":1,"item":{"id":"item_fc1","object":"realtime.item","type":"function_call","status":"completed","call_id":"call_tests","name":"background_agent","arguments":"{\\"prompt\\":\\"Please run the tests.\\"}"}}
{"type":"conversation.item.done","event_id":"event_045","previous_item_id":"item_a2","item":{"id":"item_fc1","object":"realtime.item","type":"function_call","status":"completed","call_id":"call_tests","name":"background_agent","arguments":"{\\"prompt\\":\\"Please run the tests.\\"}"}}
{"type":"response.done","event_id":"event_046","response":{"object":"realtime.response","id":"resp_2","status":"completed","output":[]}}
"""
)
"""A GA call: one spoken exchange whose input transcription finishes after the answer has
started (with an emoji split across deltas), then a request the model hands off, announced by
all three completion events."""

BETA_CALL = _frames(
    """
{"type":"session.created","event_id":"event_b01","session":{"id":"sess_beta_1","object":"realtime.session","modalities":["text","audio"]}}
{"type":"session.updated","event_id":"event_b02","session":{"id":"sess_beta_1","object":"realtime.session","modalities":["text","audio"]}}
{"type":"input_audio_buffer.speech_started","event_id":"event_b03","audio_start_ms":100,"item_id":"item_bu1"}
{"type":"input_audio_buffer.speech_stopped","event_id":"event_b04","audio_end_ms":1500,"item_id":"item_bu1"}
{"type":"input_audio_buffer.committed","event_id":"event_b05","previous_item_id":null,"item_id":"item_bu1"}
{"type":"conversation.item.created","event_id":"event_b06","previous_item_id":null,"item":{"id":"item_bu1","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}
{"type":"response.created","event_id":"event_b07","response":{"object":"realtime.response","id":"resp_b1","status":"in_progress","output":[]}}
{"type":"conversation.item.created","event_id":"event_b08","previous_item_id":"item_bu1","item":{"id":"item_ba1","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}
{"type":"response.audio_transcript.delta","event_id":"event_b09","response_id":"resp_b1","item_id":"item_ba1","output_index":0,"content_index":0,"delta":"Bonjour, ça "}
{"type":"response.audio.delta","event_id":"event_b10","response_id":"resp_b1","item_id":"item_ba1","output_index":0,"content_index":0,"delta":"AAAA"}
{"type":"response.audio_transcript.delta","event_id":"event_b11","response_id":"resp_b1","item_id":"item_ba1","output_index":0,"content_index":0,"delta":"va ?"}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_b12","item_id":"item_bu1","content_index":0,"transcript":"Salut !"}
{"type":"response.audio.done","event_id":"event_b13","response_id":"resp_b1","item_id":"item_ba1","output_index":0,"content_index":0}
{"type":"response.audio_transcript.done","event_id":"event_b14","response_id":"resp_b1","item_id":"item_ba1","output_index":0,"content_index":0,"transcript":"Bonjour, ça va ?"}
{"type":"response.done","event_id":"event_b15","response":{"object":"realtime.response","id":"resp_b1","status":"completed","output":[]}}
{"type":"conversation.item.created","event_id":"event_b16","previous_item_id":"item_ba1","item":{"id":"item_bu2","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_text","text":"Check the build, please."}]}}
{"type":"response.created","event_id":"event_b17","response":{"object":"realtime.response","id":"resp_b2","status":"in_progress","output":[]}}
{"type":"conversation.item.created","event_id":"event_b18","previous_item_id":"item_bu2","item":{"id":"item_ba2","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}
{"type":"response.text.delta","event_id":"event_b19","response_id":"resp_b2","item_id":"item_ba2","output_index":0,"content_index":0,"delta":"Checking"}
{"type":"response.text.done","event_id":"event_b20","response_id":"resp_b2","item_id":"item_ba2","output_index":0,"content_index":0,"text":"Checking."}
{"type":"conversation.item.created","event_id":"event_b21","previous_item_id":"item_ba2","item":{"id":"item_bfc","object":"realtime.item","type":"function_call","status":"in_progress","call_id":"call_build","name":"background_agent","arguments":""}}
{"type":"response.function_call_arguments.done","event_id":"event_b22","response_id":"resp_b2","item_id":"item_bfc","output_index":1,"call_id":"call_build","arguments":"{\\"prompt\\":\\"Check the build, please.\\"}"}
{"type":"response.output_item.done","event_id":"event_b23","response_id":"resp_b2","output_index":1,"item":{"id":"item_bfc","object":"realtime.item","type":"function_call","status":"completed","call_id":"call_build","name":"background_agent","arguments":"{\\"prompt\\":\\"Check the build, please.\\"}"}}
{"type":"response.done","event_id":"event_b24","response":{"object":"realtime.response","id":"resp_b2","status":"completed","output":[]}}
"""
)
"""A beta-era call: `conversation.item.created`, `response.audio_transcript.*`,
`response.text.*`, typed text, and a tool call whose arguments event lacks `name`, so only
`response.output_item.done` identifies it."""

CODEX_E2E_HANDOFF = _frames(
    """
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_c1","item_id":"item_input_1","content_index":0,"transcript":"delegate now"}
{"type":"response.output_audio_transcript.delta","event_id":"event_c2","response_id":"resp_c1","item_id":"item_output_1","output_index":0,"content_index":0,"delta":"secret context"}
{"type":"conversation.item.created","event_id":"event_c3","item":{"id":"item_control_1","type":"message","role":"system","content":[{"type":"input_text","text":"<realtime_collaboration_update>agent idle</realtime_collaboration_update>"}]}}
{"type":"conversation.item.done","event_id":"event_c4","item":{"id":"item_123","type":"function_call","call_id":"call_123","name":"background_agent","arguments":"{\\"prompt\\":\\"delegate now\\"}"}}
"""
)
"""codex `realtime_ws_e2e_realtime_v2_parser_emits_handoff_requested` (PROTOCOL §6.8 test 6)."""

ENVELOPE_EXAMPLE_CALL = _frames(
    """
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_e1","item_id":"item_e_u1","content_index":0,"transcript":"Hi how are you"}
{"type":"response.output_audio_transcript.done","event_id":"event_e2","response_id":"resp_e1","item_id":"item_e_a1","output_index":0,"content_index":0,"transcript":"Doing well, what can I help you with?"}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_e3","item_id":"item_e_u2","content_index":0,"transcript":"The secret word is strawberry"}
{"type":"conversation.item.created","event_id":"event_e4","item":{"id":"item_e_ctl","type":"message","role":"system","content":[{"type":"input_text","text":"<realtime_collaboration_update>agent idle</realtime_collaboration_update>"}]}}
{"type":"response.output_audio_transcript.delta","event_id":"event_e5","response_id":"resp_e2","item_id":"item_e_a2","output_index":0,"content_index":0,"delta":"Got it-strawberry. What's next on the menu?"}
{"type":"conversation.item.done","event_id":"event_e6","item":{"id":"item_e_fc","type":"function_call","call_id":"call_ls","name":"background_agent","arguments":"{\\"prompt\\":\\"run ls\\"}"}}
"""
)
"""The inputs of codex `webrtc_v2_background_agent_tool_call_delegates_and_returns_function_output`
(PROTOCOL §6.5)."""

LATE_USER_TRANSCRIPT = _frames(
    """
{"type":"input_audio_buffer.committed","event_id":"event_l1","previous_item_id":"item_l_a0","item_id":"item_l_u1"}
{"type":"response.created","event_id":"event_l2","response":{"id":"resp_l1","status":"in_progress"}}
{"type":"conversation.item.added","event_id":"event_l3","previous_item_id":"item_l_u1","item":{"id":"item_l_a1","type":"message","role":"assistant","content":[]}}
{"type":"response.output_text.delta","event_id":"event_l4","response_id":"resp_l1","item_id":"item_l_a1","output_index":0,"content_index":0,"delta":"Sure, the weather"}
{"type":"response.output_text.delta","event_id":"event_l5","response_id":"resp_l1","item_id":"item_l_a1","output_index":0,"content_index":0,"delta":" is sunny."}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_l6","item_id":"item_l_u1","content_index":0,"transcript":"What's the weather?"}
{"type":"response.output_text.done","event_id":"event_l7","response_id":"resp_l1","item_id":"item_l_a1","output_index":0,"content_index":0,"text":"Sure, the weather is sunny."}
{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_l8","item_id":"item_l_u1","content_index":0,"transcript":"What's the weather?"}
{"type":"response.output_text.done","event_id":"event_l9","response_id":"resp_l1","item_id":"item_l_a1","output_index":0,"content_index":0,"text":"Sure, the weather is sunny."}
"""
)
"""Joined mid-call: the user's transcription completes after the text answer streamed, and
both done events arrive twice."""
