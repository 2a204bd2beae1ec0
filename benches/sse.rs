//! The HelpDesk stream parser and event decoding on a recorded-looking 1 MB reply.
//!
//! Run with `cargo bench --bench sse`. The stream mixes what agents send: many small
//! `text_delta`s, status lines, SSE comments and `event:` lines, CRLF and LF endings, a
//! proposed command with a file, and executed output. It is fed in 4 KiB chunks, as a
//! socket delivers it. Target: above 100 MB/s on one core, so parsing is never what holds
//! a relay back.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use helpdesk_bridge::helpdesk::{events::decode_event, sse::StreamParser};

fn recorded_stream(size: usize) -> Vec<u8> {
    let mut out = String::with_capacity(size + 4096);
    let words = [
        "The ",
        "pod ",
        "`web-1` ",
        "was ",
        "OOMKilled ",
        "because ",
        "its ",
        "limit ",
        "is ",
        "256Mi; ",
        "raise ",
        "it.\n",
    ];
    let mut n = 0usize;
    while out.len() < size {
        n += 1;
        match n % 50 {
            0 => out.push_str("event: message\r\ndata: {\"type\":\"intermittent_update\",\"text\":\"Calling tool: kubectl\",\"content\":{}}\r\n\r\n"),
            1 => out.push_str(": keepalive\n\n"),
            25 => out.push_str("data: {\"type\":\"commands\",\"commands\":[{\"command\":\"kubectl apply -f limits.yaml\",\"execute\":false,\"files\":[{\"file_path\":\"limits.yaml\",\"file_content\":\"apiVersion: v1\\nkind: LimitRange\\nmetadata:\\n  name: mem\\n\"}]}]}\n\n"),
            40 => out.push_str("data: {\"type\":\"executed_commands\",\"executed_cmds\":[{\"command\":\"kubectl get pods\",\"output\":\"NAME READY STATUS\\nweb-1 0/1 OOMKilled\\n\"}]}\n\n"),
            _ => {
                let word = words[n % words.len()];
                out.push_str("event: message\ndata: {\"type\":\"text_delta\",\"text\":\"");
                out.push_str(word.trim_end_matches('\n'));
                out.push_str("\"}\n\n");
            }
        }
    }
    out.push_str("data: {\"type\":\"done\",\"stop_reason\":\"end_turn\"}\n\n");
    out.into_bytes()
}

fn parse(stream: &[u8]) -> usize {
    let mut parser = StreamParser::new();
    let mut events = 0;
    for chunk in stream.chunks(4096) {
        events += parser.push(chunk).iter().filter_map(decode_event).count();
    }
    events + parser.finish().iter().filter_map(decode_event).count()
}

fn benches(c: &mut Criterion) {
    let stream = recorded_stream(1024 * 1024);
    let events = parse(&stream);
    assert!(events > 10_000, "the recorded stream decodes to events ({events})");
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("parse_and_decode_1mb", |b| b.iter(|| parse(std::hint::black_box(&stream))));
    group.finish();
}

criterion_group!(sse_benches, benches);
criterion_main!(sse_benches);
