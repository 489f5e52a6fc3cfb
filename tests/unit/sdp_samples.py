"""Offers as real WebRTC stacks write them, for tests of `signaling.sdp`.

`CHROME_OFFER` has the shape of a desktop Chrome offer for a microphone track plus the
`oai-events` data channel, taken straight from `createOffer()` (no candidates gathered yet), which
is what a browser sends to the provider. `AIORTC_OFFER` is aiortc 1.16's `localDescription.sdp`
after `addTransceiver("audio")`, `createDataChannel("oai-events")` and `setLocalDescription`, so
it carries candidates and three fingerprints.
"""

CHROME_OFFER = "\r\n".join(
    (
        "v=0",
        "o=- 7614219274584779017 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 1c2e5b6a-3f0d-4a8e-9b7c-5d4e3f2a1b0c",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:3Jw+",
        "a=ice-pwd:Xk9sdb6Y2Yc1rZ4tq0Jm8eLp",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 A5:4D:CA:18:25:30:BB:1D:6D:13:2C:DE:D6:23:7B:2E:"
        "D9:1E:3F:72:1F:CB:19:71:17:44:94:D6:49:3C:9D:5C",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:1c2e5b6a-3f0d-4a8e-9b7c-5d4e3f2a1b0c 8d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:2847395012 cname:q8Vd3kPzW1xYt6Lb",
        "a=ssrc:2847395012 msid:1c2e5b6a-3f0d-4a8e-9b7c-5d4e3f2a1b0c "
        "8d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:3Jw+",
        "a=ice-pwd:Xk9sdb6Y2Yc1rZ4tq0Jm8eLp",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 A5:4D:CA:18:25:30:BB:1D:6D:13:2C:DE:D6:23:7B:2E:"
        "D9:1E:3F:72:1F:CB:19:71:17:44:94:D6:49:3C:9D:5C",
        "a=setup:actpass",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "",
    )
)

_AIORTC_SHA_256 = (
    "E8:50:17:7B:0C:F9:D3:FE:90:0B:69:51:73:10:21:B1:"
    "E8:8B:7F:42:0A:12:6D:B7:22:55:FA:61:77:9F:CF:5A"
)
_AIORTC_SHA_384 = (
    "EC:65:B1:76:68:21:B9:74:B6:EE:E0:20:BD:4B:F4:E8:18:33:2F:DC:57:26:75:CD:"
    "16:E6:73:1D:3C:5A:1E:0F:F6:81:41:5E:35:45:58:B2:BD:D2:F4:EE:D7:32:1E:77"
)
_AIORTC_SHA_512 = (
    "95:B5:86:A5:E2:B9:25:1D:17:FE:B1:FA:C6:E1:D8:88:63:A7:0C:C4:E6:19:D3:E1:95:70:A9:E6:58:7E:"
    "56:12:FC:CD:F6:6F:E9:5A:30:64:38:8A:28:12:C1:CF:53:14:35:12:74:94:83:A1:10:5D:6D:9C:11:31:"
    "5E:A5:A2:4B"
)

AIORTC_OFFER = "\r\n".join(
    (
        "v=0",
        "o=- 4004613311 4004613311 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic:WMS *",
        "m=audio 43859 UDP/TLS/RTP/SAVPF 96 9 0 8",
        "c=IN IP4 192.0.2.2",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=mid:0",
        "a=msid:e43f57f3-52e4-41f6-99e4-d30ffac3f2ad 55c416a5-f165-49ae-bb85-d534dafc80c1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:457011150 cname:22cc6d18-f795-4ec3-a9a1-91b4d1b9365f",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 43859 typ host",
        "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 49307 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:e7lU",
        "a=ice-pwd:pr6FMIHMqUHg0riRFMMpd5",
        f"a=fingerprint:sha-256 {_AIORTC_SHA_256}",
        f"a=fingerprint:sha-384 {_AIORTC_SHA_384}",
        f"a=fingerprint:sha-512 {_AIORTC_SHA_512}",
        "a=setup:actpass",
        "m=application 58138 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 192.0.2.2",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 58138 typ host",
        "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 42946 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:e7lU",
        "a=ice-pwd:pr6FMIHMqUHg0riRFMMpd5",
        f"a=fingerprint:sha-256 {_AIORTC_SHA_256}",
        f"a=fingerprint:sha-384 {_AIORTC_SHA_384}",
        f"a=fingerprint:sha-512 {_AIORTC_SHA_512}",
        "a=setup:actpass",
        "",
    )
)

# Firefox with bundlePolicy max-bundle: only the BUNDLE-tagged section has a port; the audio
# section is port 0 and `a=bundle-only` (RFC 8843 §7.2, RFC 9429 §5.2.1).
FIREFOX_MAX_BUNDLE = "\r\n".join(
    (
        "v=0",
        "o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=group:BUNDLE 0 1",
        "a=ice-options:trickle",
        "a=msid-semantic:WMS *",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=sendrecv",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=ice-ufrag:abcd",
        "a=mid:0",
        "a=setup:actpass",
        "a=sctp-port:5000",
        "a=max-message-size:1073741823",
        "m=audio 0 UDP/TLS/RTP/SAVPF 109",
        "c=IN IP4 0.0.0.0",
        "a=bundle-only",
        "a=sendrecv",
        "a=mid:1",
        "a=rtcp-mux",
        "a=rtpmap:109 opus/48000/2",
        "",
    )
)
