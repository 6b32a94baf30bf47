//! The system calls the agent may not make, as seccomp programs for
//! `bwrap --add-seccomp-fd`: nothing that makes namespaces (a nested user
//! namespace would give it every capability inside), mounts, loads kernel
//! code or keys, traces or reads other processes, or watches the kernel.
//! Everyday tools (git, Python, Node, compilers) make none of these.

use std::io::{Seek as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Refused with `EPERM`, whatever their arguments.
const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_perf_event_open,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
    libc::SYS_userfaultfd,
    libc::SYS_quotactl,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_vhangup,
    libc::SYS_lookup_dcookie,
    libc::SYS_io_uring_setup,
    libc::SYS_fanotify_init,
    libc::SYS_name_to_handle_at,
];

/// The two programs, in the order bwrap is given them.
pub struct Programs {
    /// `EPERM` for `DENIED`, and for `clone` asking for a new namespace.
    deny: Vec<u8>,
    /// `ENOSYS` for `clone3`: its flags are in memory a filter cannot read,
    /// and on `ENOSYS` the C libraries fall back to `clone`, which the
    /// first program checks.
    clone3: Vec<u8>,
}

impl std::fmt::Debug for Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Programs").finish_non_exhaustive()
    }
}

fn serialise(program: BpfProgram) -> Vec<u8> {
    program
        .iter()
        .flat_map(|i| {
            let mut b = Vec::with_capacity(8);
            b.extend_from_slice(&i.code.to_ne_bytes());
            b.push(i.jt);
            b.push(i.jf);
            b.extend_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect()
}

fn compile(
    rules: std::collections::BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
) -> Result<Vec<u8>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    Ok(serialise(program))
}

impl Programs {
    /// Compiles the programs for this machine's architecture.
    pub fn build() -> Result<Programs, String> {
        let mut deny: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
            DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
        // clone(flags, …): refused when a namespace flag is set in the low
        // word (one rule a flag: any matching rule refuses).
        let mut clone_rules = Vec::new();
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWCGROUP,
        ] {
            let flag = flag as u64;
            let condition = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(|e| e.to_string())?;
            clone_rules.push(SeccompRule::new(vec![condition]).map_err(|e| e.to_string())?);
        }
        deny.insert(libc::SYS_clone, clone_rules);
        let clone3 = [(libc::SYS_clone3, Vec::new())].into_iter().collect();
        Ok(Programs {
            deny: compile(deny, libc::EPERM)?,
            clone3: compile(clone3, libc::ENOSYS)?,
        })
    }

    /// The programs as descriptors bwrap reads them from (one each).
    pub fn descriptors(&self) -> std::io::Result<Vec<OwnedFd>> {
        [&self.deny, &self.clone3]
            .into_iter()
            .map(|bytes| memfd_with(bytes))
            .collect()
    }
}

/// An anonymous in-memory file holding `bytes`, read from its start.
fn memfd_with(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags; the descriptor
    // returned is new and owned by the `File` made from it.
    let fd = unsafe { libc::memfd_create(c"agent-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just made and is owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file.into())
}
