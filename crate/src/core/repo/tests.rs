//! End-to-end tests of the format-2 core on synthetic bytes (the vitest
//! suites run it on real engine data).
use super::backup_file::{store_file, FileOptions};
use super::check::{check_backup, check_packs};
use super::config::Compression;
use super::hints::Parent;
use super::keys::{BlobId, KdfParams};
use super::lists::read_list;
use super::open::{init, open, InitOptions};
use super::prune::prune;
use super::restore_file::restore_file;
use super::restore_files::{restore_in_segments, Target};
use super::storage::LocalDir;
use super::Repo;
use crate::core::test_support::TempDir;
use std::collections::HashSet;

const FAST: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

pub(crate) fn repo(dir: &TempDir, password: Option<&str>) -> Repo {
    std::fs::create_dir(dir.path("repo")).unwrap();
    let options = InitOptions { compression: Compression::Zstd(1), password, kdf: FAST, format: None };
    init(Box::new(LocalDir::new(dir.path("repo"))), options).unwrap()
}

/// A plain repository in a scratch directory (kept alive with it).
pub(crate) fn scratch_repo() -> (TempDir, Repo) {
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    (dir, repo)
}

pub(crate) fn reopen(dir: &TempDir, password: Option<&str>) -> Repo {
    open(Box::new(LocalDir::new(dir.path("repo"))), password).unwrap()
}

/// Pseudo-random bytes that compress a little, like table pages.
pub(crate) fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            if i % 3 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> (i % 3 * 8)) as u8 & if i % 64 < 16 { 0 } else { 0xff }
        })
        .collect()
}

pub(crate) fn plain(heap: bool) -> FileOptions {
    FileOptions { heap, ..FileOptions::default() }
}

pub(crate) fn round_trip(dir: &TempDir, repo: &Repo, name: &str, data: &[u8], heap: bool) -> Vec<BlobId> {
    let src = dir.write(name, data);
    let stored = store_file(repo, &src, &plain(heap)).unwrap();
    repo.commit().unwrap();
    assert_eq!(stored.len, data.len() as u64);
    let out = dir.path(&format!("{name}.restored"));
    let _ = std::fs::remove_file(&out);
    let hash = restore_file(repo, &stored.lists, stored.len, &out, true).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(hash.unwrap(), blake3::hash(data).to_hex().to_string());
    stored.lists
}

#[test]
fn files_round_trip_and_unchanged_content_is_stored_once() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let heap = bytes(1, 4096 * 700);
        round_trip(&dir, &repo, "T.heap", &heap, true);
        let idx = bytes(2, 3_000_000);
        round_trip(&dir, &repo, "T.idx", &idx, false);
        round_trip(&dir, &repo, "empty", b"", false);
        let before = repo.index().len();
        // One page changed, bytes inserted in the middle of the index.
        let mut heap2 = heap.clone();
        heap2[4096 * 300 + 100] ^= 0xff;
        let mut idx2 = idx.clone();
        idx2.splice(1_000_000..1_000_000, bytes(3, 5000));
        let src = dir.write("T.heap", &heap2);
        let s = store_file(&repo, &src, &plain(true)).unwrap();
        assert_eq!(s.new_chunks, 1, "one heap run changed");
        let src = dir.write("T.idx", &idx2);
        let s = store_file(&repo, &src, &plain(false)).unwrap();
        // Without resynchronization every chunk after the insertion (about 50 of 77) would be new. How
        // soon the boundaries realign depends on the repository's random chunker seed: over 300 seeds,
        // 1 new chunk in 71%, at most 7; so the bound leaves room for the tail and no room for a miss.
        assert!(s.new_chunks <= 12, "content-defined chunks resynchronize: {} new of {}", s.new_chunks, s.chunks);
        let stats = repo.commit().unwrap();
        // Storing both files again would be 5.9 MB.
        assert!(stats.raw_bytes < 1_000_000, "{stats:?}");
        assert!(repo.index().len() > before);
        let again = reopen(&dir, password);
        assert_eq!(again.index().len(), repo.index().len());
    }
}

#[test]
fn an_encrypted_repository_holds_no_plaintext_and_refuses_a_wrong_password() {
    let dir = TempDir::new();
    let repo = repo(&dir, Some("secret"));
    let mut data = b"MARKER-STRING-12345 ".repeat(5000);
    data.extend(bytes(4, 100_000));
    round_trip(&dir, &repo, "T.idx", &data, false);
    repo.write_object("snapshots/x", b"{\"name\":\"MARKER-STRING-12345\"}").unwrap();
    for object in repo.storage.list("").unwrap() {
        let raw = repo.storage.get(&object.key).unwrap();
        assert!(!raw.windows(13).any(|w| w == b"MARKER-STRING"), "{} leaks plaintext", object.key);
    }
    let wrong = open(Box::new(LocalDir::new(dir.path("repo"))), Some("nope"));
    assert_eq!(wrong.err().unwrap().code, "ERR_BAD_PASSWORD");
    let none = open(Box::new(LocalDir::new(dir.path("repo"))), None);
    assert_eq!(none.err().unwrap().code, "ERR_PASSWORD_REQUIRED");
    let id = repo.add_key("secret", "second", FAST).unwrap();
    assert_eq!(
        reopen(&dir, Some("second")).read_object("snapshots/x").unwrap(),
        repo.read_object("snapshots/x").unwrap()
    );
    repo.remove_key(repo.key_id.as_deref().unwrap()).unwrap();
    assert_eq!(repo.remove_key(&id).unwrap_err().code, "ERR_LAST_KEY");
    assert!(open(Box::new(LocalDir::new(dir.path("repo"))), Some("secret")).is_err());
}

#[test]
fn check_finds_a_flipped_byte_and_names_the_files_it_breaks() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let lists = round_trip(&dir, &repo, "T.heap", &bytes(5, 4096 * 64), true);
        let clean = check_packs(&repo).unwrap();
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        let pack = repo.storage.list("data/").unwrap().remove(0);
        let path = dir.path("repo").join(&pack.key);
        let mut raw = std::fs::read(&path).unwrap();
        raw[1000] ^= 0x10;
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &raw).unwrap();
        let found = check_packs(&repo).unwrap();
        assert!(!found.problems.is_empty() && !found.bad.is_empty());
        let problems = check_backup(&repo, &[("T.heap".into(), lists.clone())], &found.bad);
        assert!(problems.iter().any(|p| p.code == "ERR_INTEGRITY" && p.message.starts_with("T.heap")), "{problems:?}");
        let out = dir.path("broken");
        let err = restore_file(&repo, &lists, 4096 * 64, &out, false).unwrap_err();
        assert_eq!(err.code, "ERR_INTEGRITY");
    }
}

#[test]
fn prune_keeps_exactly_what_retained_files_use() {
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    let a = round_trip(&dir, &repo, "a", &bytes(6, 4096 * 3000), true);
    let b = round_trip(&dir, &repo, "b", &bytes(7, 4096 * 3000), true);
    let before: u64 = repo.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    let stats = prune(&repo, &b).unwrap();
    assert!(stats.packs_removed > 0 && stats.bytes_freed > 0, "{stats:?}");
    let after: u64 = repo.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    assert!(after < before * 6 / 10, "{after} of {before}");
    assert!(restore_file(&repo, &b, 4096 * 3000, &dir.path("b2"), false).is_ok());
    assert!(restore_file(&repo, &a, 4096 * 3000, &dir.path("a2"), false).is_err());
    let bad: HashSet<BlobId> = check_packs(&repo).unwrap().bad;
    assert!(bad.is_empty());
    assert_eq!(repo.storage.list("index/").unwrap().len(), 1);
}

/// Two writers side by side (two handles, as two processes) that store the same file at once both
/// store its chunks; each restores, and prune keeps one copy of each chunk.
#[test]
fn chunks_two_writers_stored_at_once_are_kept_once_by_prune() {
    let dir = TempDir::new();
    let first = repo(&dir, None);
    let second = reopen(&dir, None);
    let content = bytes(8, 4096 * 1500);
    let path = dir.write("T.heap", &content);
    let (a, b) = (store_file(&first, &path, &plain(true)).unwrap(), store_file(&second, &path, &plain(true)).unwrap());
    assert_eq!(a.lists, b.lists, "one content, one list");
    first.commit().unwrap();
    second.commit().unwrap();
    let before: u64 = first.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    let after_both = reopen(&dir, None);
    assert!(restore_file(&after_both, &b.lists, content.len() as u64, &dir.path("both"), false).is_ok());
    let stats = prune(&after_both, &a.lists).unwrap();
    assert!(stats.blobs_removed > 0 && stats.packs_removed > 0, "the second copies go: {stats:?}");
    let after: u64 = after_both.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    assert!(after * 10 < before * 6, "about one copy is left: {after} of {before}");
    let out = dir.path("once");
    restore_file(&after_both, &a.lists, content.len() as u64, &out, false).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert!(check_packs(&after_both).unwrap().bad.is_empty());
}

#[test]
fn unindexed_packs_are_indexed_anew_with_their_intact_blobs_and_empty_ones_removed() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let data = bytes(8, 4096 * 3000); // several packs
        let lists = round_trip(&dir, &repo, "a", &data, true);
        let packs = repo.storage.list("data/").unwrap();
        assert!(packs.len() >= 2);
        // The stored unit (a chunk, or a compression block of several) of the first data chunk of a pack.
        let records = super::index::read_all(repo.storage.as_ref(), &repo.keys).unwrap().remove(0).1.unwrap();
        let record = records.iter().find(|r| r.entries.iter().any(|e| e.kind == super::pack::KIND_DATA)).unwrap();
        let unit = *record.entries.iter().find(|e| e.kind == super::pack::KIND_DATA).unwrap();
        let lost = record.entries.iter().filter(|e| e.offset == unit.offset).count() as u64;
        // The index is lost, one pack has a flipped byte, a stray object holds nothing intact.
        for index in repo.storage.list("index/").unwrap() {
            repo.storage.delete(&index.key).unwrap();
        }
        let flipped = dir.path("repo").join(&record.key);
        let mut raw = std::fs::read(&flipped).unwrap();
        raw[(unit.offset + unit.stored_len / 2) as usize] ^= 0x01;
        std::fs::remove_file(&flipped).unwrap();
        std::fs::write(&flipped, &raw).unwrap();
        repo.storage.put_new("data/00/00", b"not a pack").unwrap();
        let again = reopen(&dir, password);
        assert!(restore_file(&again, &lists, data.len() as u64, &dir.path("lost"), false).is_err());

        let settled = again.settle_unindexed().unwrap();
        assert_eq!(settled, super::writer::Settled { adopted: packs.len() as u64, removed: 1 });
        assert!(again.storage.get("data/00/00").is_err());
        // Every blob but the flipped unit's is back; a new backup of the file stores just those.
        let src = dir.write("a", &data);
        let stored = store_file(&again, &src, &plain(true)).unwrap();
        assert_eq!(stored.new_chunks, lost);
        again.commit().unwrap();
        let out = dir.path("healed");
        restore_file(&again, &stored.lists, data.len() as u64, &out, false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
    }
}

#[test]
fn compare_file_names_differing_pages_and_lengths() {
    use super::restore_file::compare_file;
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    let heap = bytes(9, 4096 * 40);
    let lists = round_trip(&dir, &repo, "T.heap", &heap, true);
    let len = heap.len() as u64;
    let same = dir.write("same.heap", &heap);
    assert!(compare_file(&repo, &lists, len, &same, true).unwrap().equal);
    let mut changed = heap.clone();
    changed[4096 * 7 + 5] ^= 1;
    changed.extend(bytes(10, 4096 * 2)); // two pages only the source has
    let other = dir.write("other.heap", &changed);
    let c = compare_file(&repo, &lists, len, &other, true).unwrap();
    assert_eq!((c.equal, c.differing, c.source_len), (false, vec![7, 40, 41], len + 8192));
    let short = dir.write("short.heap", &heap[..4096 * 30]);
    assert_eq!(compare_file(&repo, &lists, len, &short, true).unwrap().differing, (30..40).collect::<Vec<u64>>());
    // Other files: equal or not, as a whole.
    let idx = bytes(11, 100_000);
    let lists = round_trip(&dir, &repo, "T.idx", &idx, false);
    let mut idx2 = idx.clone();
    idx2[99_999] ^= 1;
    let a = dir.write("a.idx", &idx);
    let b = dir.write("b.idx", &idx2);
    assert!(compare_file(&repo, &lists, idx.len() as u64, &a, false).unwrap().equal);
    assert!(!compare_file(&repo, &lists, idx.len() as u64, &b, false).unwrap().equal);
}

/// An increment reuses the parent's chunk ids where the fast hashes match,
/// stores what changed, and restores byte for byte; a parent whose hints do
/// not match its lists is ignored.
#[test]
fn hints_reuse_unchanged_chunks_and_never_hide_a_change() {
    let dir = TempDir::new();
    let repo = repo(&dir, Some("pw"));
    for heap in [true, false] {
        let mut data = bytes(if heap { 11 } else { 12 }, 4096 * 900);
        let src = dir.write("f", &data);
        let first = store_file(&repo, &src, &FileOptions { heap, parent: None, hints: true }).unwrap();
        repo.commit().unwrap();
        let hints = first.hints.clone().unwrap();
        // Change one byte in the middle and another near the end; grow by 40 pages.
        data[4096 * 450 + 7] ^= 1;
        let end = data.len() - 100;
        data[end] ^= 0x80;
        data.extend_from_slice(&bytes(13, 4096 * 40));
        let src = dir.write("f", &data);
        let parent = Parent::load(&repo, &first.lists, &hints, !heap).unwrap();
        let second = store_file(&repo, &src, &FileOptions { heap, parent: Some(parent), hints: true }).unwrap();
        repo.commit().unwrap();
        assert!(second.new_chunks >= 2 && second.new_chunks <= 12, "{heap}: {} new chunks", second.new_chunks);
        assert!(second.reused + 12 >= second.chunks, "{heap}: {} of {} reused", second.reused, second.chunks);
        let out = dir.path("out");
        let _ = std::fs::remove_file(&out);
        restore_file(&repo, &second.lists, second.len, &out, false).unwrap();
        assert!(std::fs::read(&out).unwrap() == data, "{heap}: restored bytes differ");
        // Hints of another file's length are refused, so nothing is reused from them.
        assert!(Parent::load(&repo, &first.lists, &second.hints.unwrap(), !heap).is_none());
    }
}

/// A delta restore brings a changed copy back to the stored file, whether it
/// compares by change hints or by chunk ids; an unchanged copy is left alone.
#[test]
fn delta_restore_by_hints_or_ids_restores_the_stored_bytes() {
    use super::patch::patch_file;
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    for heap in [true, false] {
        let data = bytes(if heap { 21 } else { 22 }, 4096 * 600);
        let src = dir.write("src", &data);
        let stored = store_file(&repo, &src, &FileOptions { heap, parent: None, hints: true }).unwrap();
        repo.commit().unwrap();
        let hints = stored.hints.clone().unwrap();
        for use_hints in [true, false] {
            let mut copy = data.clone();
            copy[4096 * 100 + 5] ^= 1;
            copy[4096 * 400..4096 * 401].fill(7);
            copy.truncate(4096 * 550);
            let dest = dir.write("dest", &copy);
            let temp = dir.path("temp");
            let _ = std::fs::remove_file(&temp);
            let h = use_hints.then_some(hints.as_slice());
            let r = patch_file(&repo, &stored.lists, h, stored.len, &dest, &temp, heap).unwrap();
            let result = if r.rebuilt { &temp } else { &dest };
            assert!(std::fs::read(result).unwrap() == data, "heap {heap}, hints {use_hints}: bytes differ");
            assert!(
                r.chunks_fetched >= 2 && r.chunks_fetched <= 20,
                "heap {heap}, hints {use_hints}: {} fetched",
                r.chunks_fetched
            );
            // Now identical: nothing fetched, nothing written.
            let dest = dir.write("dest", &data);
            let _ = std::fs::remove_file(&temp);
            let again = patch_file(&repo, &stored.lists, h, stored.len, &dest, &temp, heap).unwrap();
            assert_eq!((again.chunks_fetched, again.outcome.bytes_written, again.rebuilt), (0, 0, false));
        }
    }
}

#[test]
fn files_stored_side_by_side_restore_together_pack_by_pack() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let heap = bytes(7, 4096 * 900);
        let mut idx = bytes(8, 2_500_000);
        idx.extend_from_within(..400_000); // chunks the file uses twice
        let (h, i) = (dir.write("T.heap", &heap), dir.write("T.idx", &idx));
        // Stored at once, so that their chunks interleave in the packs.
        let (sh, si) = std::thread::scope(|s| {
            let a = s.spawn(|| store_file(&repo, &h, &plain(true)).unwrap());
            let b = s.spawn(|| store_file(&repo, &i, &plain(false)).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        let empty = store_file(&repo, &dir.write("empty", b""), &plain(false)).unwrap();
        repo.commit().unwrap();
        let ids: Vec<BlobId> = si.lists.iter().flat_map(|l| read_list(&repo, l).unwrap()).map(|(id, _)| id).collect();
        assert!(ids.len() > ids.iter().collect::<HashSet<_>>().len(), "the index file repeats a chunk");
        let files = [(&sh, &heap[..], "heap"), (&si, &idx[..], "idx"), (&empty, &b""[..], "empty")];
        // One list per segment, and all in one.
        for segment_lists in [1, 32] {
            let outs: Vec<_> = files.iter().map(|(_, _, n)| dir.path(&format!("{n}.{segment_lists}"))).collect();
            let targets: Vec<Target> =
                files.iter().zip(&outs).map(|((s, _, _), dest)| Target { lists: &s.lists, len: s.len, dest }).collect();
            let hashes = restore_in_segments(&repo, &targets, true, segment_lists).unwrap();
            for (((_, data, name), out), hash) in files.iter().zip(&outs).zip(hashes) {
                assert!(
                    std::fs::read(out).unwrap() == *data,
                    "{name} restored as stored ({segment_lists} lists at once)"
                );
                assert_eq!(hash.unwrap(), blake3::hash(data).to_hex().to_string());
            }
        }
        let long = dir.path("long");
        let wrong = restore_in_segments(&repo, &[Target { lists: &sh.lists, len: sh.len + 1, dest: &long }], false, 32);
        assert_eq!(wrong.unwrap_err().code, "ERR_INTEGRITY");
    }
}

/// A local directory that records every ranged read, and can pass for an
/// object store (whose reads are planned larger).
struct Counting {
    inner: LocalDir,
    remote: bool,
    reads: Reads,
}

type Reads = std::sync::Arc<std::sync::Mutex<Vec<(String, u64, usize)>>>;

impl super::storage::Storage for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put_new(&self, key: &str, data: &[u8]) -> crate::core::error::CoreResult<()> {
        self.inner.put_new(key, data)
    }
    fn is_remote(&self) -> bool {
        self.remote
    }
    fn transfers(&self) -> usize {
        if self.remote {
            4
        } else {
            1
        }
    }
    fn get(&self, key: &str) -> crate::core::error::CoreResult<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: usize) -> crate::core::error::CoreResult<Vec<u8>> {
        self.reads.lock().unwrap().push((key.to_string(), offset, len));
        self.inner.get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> crate::core::error::CoreResult<Vec<super::storage::ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> crate::core::error::CoreResult<()> {
        self.inner.delete(key)
    }
    fn clean_partial(&self) -> crate::core::error::CoreResult<usize> {
        self.inner.clean_partial()
    }
    fn put_replace(&self, key: &str, data: &[u8]) -> crate::core::error::CoreResult<()> {
        self.inner.put_replace(key, data)
    }
    fn get_tagged(&self, key: &str) -> crate::core::error::CoreResult<(Vec<u8>, String)> {
        self.inner.get_tagged(key)
    }
    fn replace_if(&self, key: &str, data: &[u8], tag: &str) -> crate::core::error::CoreResult<()> {
        self.inner.replace_if(key, data, tag)
    }
}

#[test]
fn a_restore_reads_each_byte_of_a_pack_at_most_once() {
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    let heap = bytes(9, 4096 * 2000);
    let idx = bytes(10, 6_000_000);
    let (h, i) = (dir.write("T.heap", &heap), dir.write("T.idx", &idx));
    let (sh, si) = std::thread::scope(|s| {
        let a = s.spawn(|| store_file(&repo, &h, &plain(true)).unwrap());
        let b = s.spawn(|| store_file(&repo, &i, &plain(false)).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    repo.commit().unwrap();
    for remote in [false, true] {
        let log = Reads::default();
        let storage = Counting { inner: LocalDir::new(dir.path("repo")), remote, reads: log.clone() };
        let counted = open(Box::new(storage), None).unwrap();
        let outs = [dir.path(&format!("heap.{remote}")), dir.path(&format!("idx.{remote}"))];
        let targets = [
            Target { lists: &sh.lists, len: sh.len, dest: &outs[0] },
            Target { lists: &si.lists, len: si.len, dest: &outs[1] },
        ];
        restore_in_segments(&counted, &targets, false, 32).unwrap();
        assert!(std::fs::read(&outs[0]).unwrap() == heap && std::fs::read(&outs[1]).unwrap() == idx);
        // The lists themselves are read first, one small read each.
        let lists: HashSet<(String, u64)> = sh
            .lists
            .iter()
            .chain(&si.lists)
            .map(|id| counted.index().get(id).map(|(pack, e)| (pack.to_string(), e.offset as u64)).unwrap())
            .collect();
        let mut reads: Vec<(String, u64, usize)> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, at, _)| k.starts_with("data/") && !lists.contains(&(k.clone(), *at)))
            .cloned()
            .collect();
        reads.sort();
        let packs: HashSet<&String> = reads.iter().map(|(k, _, _)| k).collect();
        for pair in reads.windows(2) {
            let ((a, at, len), (b, bt, _)) = (&pair[0], &pair[1]);
            assert!(a != b || at + *len as u64 <= *bt, "{a} read twice at {bt} (remote: {remote}): {:?}", pair);
        }
        if remote {
            // The chunks of both files share the packs: few, large reads.
            assert!(reads.len() <= 3 * packs.len() + 4, "{} reads of {} packs", reads.len(), packs.len());
        }
    }
}

/// Replaces the object `key` of the local repository with `change(bytes)`.
pub(crate) fn damage_object(dir: &TempDir, key: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.path("repo").join(key);
    let mut raw = std::fs::read(&path).unwrap();
    change(&mut raw);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &raw).unwrap();
}

#[test]
fn recorded_damage_is_stored_again_by_the_next_backup_and_repair_drops_it() {
    use super::damage;
    use super::repair::repair;
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let data = bytes(9, 4096 * 64);
        let lists = round_trip(&dir, &repo, "T.heap", &data, true);
        let pack = repo.storage.list("data/").unwrap().remove(0).key;
        damage_object(&dir, &pack, |raw| raw[1000] ^= 0x10);
        let found = check_packs(&repo).unwrap();
        let damaged: Vec<BlobId> = found.damage[&pack].iter().copied().collect();
        assert!(!damaged.is_empty() && found.bad.len() == damaged.len(), "{found:?}");
        assert_eq!(damage::record(&repo, &found.damage).unwrap(), damaged.len() as u64);
        assert_eq!(damage::record(&repo, &found.damage).unwrap(), 0, "recorded once");

        // The next backup of the same content stores the damaged chunks again, and the new copy wins.
        let repo = reopen(&dir, password);
        assert!(damaged.iter().all(|id| !repo.knows(id)));
        let src = dir.write("T.heap", &data);
        let again = store_file(&repo, &src, &plain(true)).unwrap();
        assert_eq!(again.new_chunks, damaged.len() as u64);
        repo.commit().unwrap();
        let repo = reopen(&dir, password);
        assert!(damaged.iter().all(|id| repo.index().get(id).unwrap().0 != pack));
        let out = dir.path("old.restored");
        restore_file(&repo, &lists, data.len() as u64, &out, false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data, "the older backup heals too");

        // Repair keeps the intact chunks of the damaged pack, then removes it and the records.
        let stats = repair(&repo).unwrap();
        assert_eq!((stats.packs_damaged, stats.packs_removed, stats.blobs_lost), (1, 1, 0), "{stats:?}");
        assert_eq!(stats.records_cleared, 1);
        assert!(repo.storage.get(&pack).is_err());
        assert!(repo.storage.list("damage/").unwrap().is_empty());
        let clean = check_packs(&repo).unwrap();
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        let out = dir.path("repaired.restored");
        restore_file(&repo, &lists, data.len() as u64, &out, false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(repair(&repo).unwrap(), super::repair::RepairStats::default(), "nothing left to do");
    }
}

#[test]
fn repair_drops_a_missing_pack_and_names_the_files_that_need_it() {
    use super::repair::{missing_chunks, repair};
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    let a = bytes(10, 4096 * 64);
    let b = bytes(11, 4096 * 64);
    let lists_a = round_trip(&dir, &repo, "A.heap", &a, true);
    let before: HashSet<String> = repo.storage.list("data/").unwrap().into_iter().map(|o| o.key).collect();
    let lists_b = round_trip(&dir, &repo, "B.heap", &b, true);
    let pack_b = repo.storage.list("data/").unwrap().into_iter().find(|o| !before.contains(&o.key)).unwrap().key;
    repo.storage.delete(&pack_b).unwrap();
    // A truncated pack: its header is gone, the blobs before the cut are intact and kept.
    let pack_a = before.iter().next().unwrap().clone();
    let len = repo.storage.get(&pack_a).unwrap().len();
    damage_object(&dir, &pack_a, |raw| raw.truncate(len - 20));

    let stats = repair(&repo).unwrap();
    assert_eq!((stats.packs_damaged, stats.packs_removed, stats.packs_written), (2, 2, 1), "{stats:?}");
    assert!(stats.blobs_lost > 0 && stats.blobs_salvaged > 0, "{stats:?}");
    let files = vec![("A.heap".to_string(), lists_a.clone()), ("B.heap".to_string(), lists_b.clone())];
    let missing = missing_chunks(&repo, &files).unwrap();
    assert_eq!(missing.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["B.heap"]);
    assert!(check_packs(&repo).unwrap().problems.is_empty());
    let out = dir.path("a.restored");
    restore_file(&repo, &lists_a, a.len() as u64, &out, false).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), a);
    assert_eq!(
        restore_file(&repo, &lists_b, b.len() as u64, &dir.path("b.lost"), false).unwrap_err().code,
        "ERR_MISSING_FILE"
    );
    // B's content backed up again: the old backup restores once more.
    let src = dir.write("B.heap", &b);
    store_file(&repo, &src, &plain(true)).unwrap();
    repo.commit().unwrap();
    restore_file(&repo, &lists_b, b.len() as u64, &dir.path("b.healed"), false).unwrap();
    assert!(missing_chunks(&repo, &files).unwrap().is_empty());
}
