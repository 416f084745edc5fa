//! Our seccomp program (one decision tree, `sandbox::seccomp::bpf`) against an independent
//! compilation of the same lists by seccompiler (three linear programs, one per action pair,
//! combined as the kernel combines programs: the most severe answer wins), call by call: every
//! number 0–1023 and the x32 range, each with a grid of arguments that crosses every argument
//! rule's edges, on both architectures, with and without a pid for `tgkill`.

use sandbox::seccomp::bpf::{evaluate, SeccompData};
use sandbox::seccomp::filter::{NAMESPACE_FLAGS, THREAD_FLAGS};
use sandbox::seccomp::{compile_filter, Arch, Rule};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).unwrap()
}

/// The allowlist rules of an entry, in seccompiler's terms (`None`: not allowed).
fn oracle_rules(rule: Rule, own_pid: Option<i32>) -> Option<Vec<SeccompRule>> {
    use SeccompCmpArgLen::{Dword, Qword};
    let one = |conditions| SeccompRule::new(conditions).unwrap();
    Some(match rule {
        Rule::Always | Rule::NotSigsys | Rule::Enosys => Vec::new(),
        Rule::ThreadsOnly => vec![one(vec![
            cond(0, Qword, SeccompCmpOp::MaskedEq(THREAD_FLAGS), THREAD_FLAGS),
            cond(0, Qword, SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS), 0),
        ])],
        Rule::PrivateOnly => vec![one(vec![cond(3, Dword, SeccompCmpOp::MaskedEq(libc::MAP_SHARED as u64), 0)])],
        Rule::ThreadName => vec![
            one(vec![cond(0, Dword, SeccompCmpOp::Eq, libc::PR_SET_NAME as u64)]),
            one(vec![cond(0, Dword, SeccompCmpOp::Eq, libc::PR_GET_NAME as u64)]),
        ],
        Rule::OwnProcess => vec![one(vec![cond(0, Dword, SeccompCmpOp::Eq, own_pid? as u64)])],
    })
}

fn compile(
    arch: TargetArch,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    otherwise: SeccompAction,
    matched: SeccompAction,
) -> Vec<libc::sock_filter> {
    let program: BpfProgram = SeccompFilter::new(rules, otherwise, matched, arch).unwrap().try_into().unwrap();
    program.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
}

/// seccompiler's three programs for the lists.
fn oracle(arch: Arch, own_pid: Option<i32>) -> [Vec<libc::sock_filter>; 3] {
    let target = match arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let entries = arch.allowed();
    let allowed = entries.iter().filter_map(|e| Some((e.nr, oracle_rules(e.rule, own_pid)?))).collect();
    let with_rule = |rule| entries.iter().filter(move |e| e.rule == rule).map(|e| e.nr);
    let sigsys = || {
        vec![SeccompRule::new(vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::SIGSYS as u64)]).unwrap()]
    };
    let kill = with_rule(Rule::NotSigsys).map(|nr| (nr, sigsys())).collect();
    let enosys = with_rule(Rule::Enosys).map(|nr| (nr, Vec::new())).collect();
    [
        compile(target, allowed, SeccompAction::Trap, SeccompAction::Allow),
        compile(target, kill, SeccompAction::Allow, SeccompAction::KillProcess),
        compile(target, enosys, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32)),
    ]
}

/// What the kernel answers with several programs installed: the most severe action (the lowest
/// as a signed number: KILL_PROCESS < KILL_THREAD < TRAP < ERRNO < ALLOW).
fn combined(programs: &[Vec<libc::sock_filter>], data: &SeccompData) -> u32 {
    programs
        .iter()
        .map(|p| evaluate(p, data).expect("seccompiler's program evaluates"))
        .min_by_key(|action| (action & 0xffff_0000) as i32)
        .unwrap()
}

#[test]
fn our_program_answers_every_call_as_seccompilers_programs_do() {
    let arg0 = [
        0,
        1,
        2,
        libc::SIGSYS as u64,
        libc::SIGSYS as u64 | 1 << 32,
        libc::SIGSEGV as u64,
        libc::PR_SET_NAME as u64,
        libc::PR_GET_NAME as u64,
        libc::PR_SET_DUMPABLE as u64,
        THREAD_FLAGS,
        THREAD_FLAGS | libc::CLONE_SETTLS as u64,
        THREAD_FLAGS | libc::CLONE_NEWUSER as u64,
        THREAD_FLAGS | 0x80,
        THREAD_FLAGS | 1 << 40,
        THREAD_FLAGS & !(libc::CLONE_VM as u64),
        libc::SIGCHLD as u64,
    ];
    let arg3 = [
        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
        libc::MAP_SHARED as u64,
        3, // MAP_SHARED_VALIDATE
        (libc::MAP_PRIVATE as u64) | 1 << 40,
        libc::MAP_SHARED as u64 | 1 << 40,
    ];
    let mut compared = 0u64;
    for arch in [Arch::X86_64, Arch::Aarch64] {
        for own_pid in [None, Some(1), Some(4242)] {
            let ours = compile_filter(arch, own_pid).unwrap();
            let theirs = oracle(arch, own_pid);
            let numbers = (0..1024).chain(0x4000_0000..0x4000_0200).chain([u32::MAX as i32 as i64 as u32]);
            for nr in numbers {
                for (a0, a3) in arg0.iter().flat_map(|a| arg3.iter().map(move |b| (*a, *b))) {
                    let data = SeccompData {
                        nr: nr as i32,
                        arch: arch.audit(),
                        instruction_pointer: 0,
                        args: [a0, 7, 0, a3, u64::MAX, 0],
                    };
                    let got = evaluate(ours.program(), &data).expect("our program evaluates");
                    assert_eq!(got, combined(&theirs, &data), "{arch:?} pid {own_pid:?} nr {nr} args {:x?}", data.args);
                    compared += 1;
                }
            }
            // Another architecture: killed by both.
            let data = SeccompData { nr: 1, arch: 0x4000_0003, instruction_pointer: 0, args: [0; 6] };
            assert_eq!(evaluate(ours.program(), &data), Some(combined(&theirs, &data)));
        }
    }
    assert!(compared > 500_000, "{compared}");
}
