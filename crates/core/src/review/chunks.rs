//! What one review round shows the reviewer, cut into calls: the files a
//! codemod rule rewrote grouped by their rule (one block per rule: the
//! rule, its file count and a few sample diffs), every other file with its
//! own diff.

use std::collections::HashMap;

use cadre_store::{SubtaskDirective, SubtaskRecord};
use cadre_types::SubtaskId;

use crate::Result;
use crate::actions::{FileAction, action_patch};
use crate::codemod::{CODEMOD_TIER, parse_rules};
use crate::diff::unified_diff;
use crate::prompts::RuleBlock;
use crate::run::JobRun;

/// Most items (files and rule blocks) one reviewer call covers.
const REVIEW_CHUNK_FILES: usize = 100;

/// Most bytes of diff one reviewer call covers.
const REVIEW_CHUNK_BYTES: usize = 200_000;

/// Most sample diffs a rule block shows.
pub(super) const RULE_SAMPLES: usize = 3;

/// A codemod rule and the files it rewrote, reviewed as one.
#[derive(Debug)]
pub(super) struct RuleGroup<'s> {
    /// What the reviewer reads.
    pub block: RuleBlock,
    /// Every file the rule rewrote, in path order.
    pub subtasks: Vec<&'s SubtaskRecord>,
}

/// One reviewer call's worth.
#[derive(Debug, Default)]
pub(super) struct Chunk<'s> {
    /// Rule blocks.
    pub rules: Vec<RuleGroup<'s>>,
    /// Files reviewed one by one, with their diffs.
    pub files: Vec<(&'s SubtaskRecord, String)>,
    /// Bytes of diff (and rule text) so far.
    size: usize,
}

impl<'s> Chunk<'s> {
    /// Verdicts the reviewer owes: one per file and one per rule.
    pub fn items(&self) -> usize {
        self.rules.len() + self.files.len()
    }

    /// Every subtask the call decides on, rule groups' files included.
    pub fn subtasks(&self) -> impl Iterator<Item = &'s SubtaskRecord> + '_ {
        self.rules
            .iter()
            .flat_map(|g| g.subtasks.iter().copied())
            .chain(self.files.iter().map(|(s, _)| *s))
    }

    /// Whether an item of `size` bytes still fits: at most
    /// [`REVIEW_CHUNK_FILES`] items and about [`REVIEW_CHUNK_BYTES`] (an
    /// item larger than that goes alone).
    fn has_room_for(&self, size: usize) -> bool {
        self.items() == 0
            || (self.items() < REVIEW_CHUNK_FILES && self.size + size <= REVIEW_CHUNK_BYTES)
    }

    fn push(&mut self, item: Item<'s>) {
        self.size += item.size();
        match item {
            Item::Rule(group) => self.rules.push(group),
            Item::File(sub, diff) => self.files.push((sub, diff)),
        }
    }
}

/// What a chunk holds one of.
enum Item<'s> {
    Rule(RuleGroup<'s>),
    File(&'s SubtaskRecord, String),
}

impl Item<'_> {
    /// Bytes of diff (and rule text) the reviewer reads for it.
    fn size(&self) -> usize {
        match self {
            Item::Rule(group) => {
                group.block.yaml.len()
                    + group
                        .block
                        .samples
                        .iter()
                        .map(|(_, d)| d.len())
                        .sum::<usize>()
            }
            Item::File(_, diff) => diff.len(),
        }
    }
}

/// A review round's chunks, built one at a time as the round asks for them
/// (rule blocks first, then the other files), so the round holds the diffs
/// of the chunks in flight, not of the whole job. Diffs are computed one
/// file at a time; a rule group keeps only its samples' diffs.
pub(super) struct Chunks<'s> {
    directives: HashMap<SubtaskId, SubtaskDirective>,
    /// Rules not yet built: id, text and files (path order).
    rules: std::vec::IntoIter<(String, String, Vec<&'s SubtaskRecord>)>,
    /// Files reviewed one by one, not yet built.
    singles: std::vec::IntoIter<&'s SubtaskRecord>,
    /// The item that did not fit the last chunk.
    carry: Option<Item<'s>>,
}

impl<'s> Chunks<'s> {
    /// Sorts `subtasks` into rule groups and files reviewed one by one.
    pub async fn new(run: &JobRun, subtasks: &'s [SubtaskRecord]) -> Result<Self> {
        let directives = run.store().job_directives_brief(run.job_id).await?;
        let rewrites = run
            .store()
            .accepted_rule_rewrites(run.job_id, CODEMOD_TIER)
            .await?;
        let mut by_rule: Vec<(&str, Vec<&SubtaskRecord>)> = Vec::new();
        let mut rule_index: HashMap<&str, usize> = HashMap::new();
        let mut singles = Vec::new();
        for sub in subtasks {
            match rewrites.get(&sub.id) {
                Some(rule) => {
                    let i = *rule_index.entry(rule.as_str()).or_insert_with(|| {
                        by_rule.push((rule.as_str(), Vec::new()));
                        by_rule.len() - 1
                    });
                    by_rule[i].1.push(sub);
                }
                None => singles.push(sub),
            }
        }
        let mut ids: Vec<String> = Vec::new();
        let mut rules = Vec::with_capacity(by_rule.len());
        for (text, mut subs) in by_rule {
            subs.sort_by(|a, b| a.path.cmp(&b.path));
            let id = unique_id(&rule_id(text), &ids);
            ids.push(id.clone());
            rules.push((id, text.to_owned(), subs));
        }
        Ok(Self {
            directives,
            rules: rules.into_iter(),
            singles: singles.into_iter(),
            carry: None,
        })
    }

    /// The next chunk, `None` when every item is in one.
    pub async fn next(&mut self, run: &JobRun) -> Result<Option<Chunk<'s>>> {
        let mut chunk = Chunk::default();
        loop {
            let item = match self.carry.take() {
                Some(item) => item,
                None => match self.next_item(run).await? {
                    Some(item) => item,
                    None => break,
                },
            };
            if !chunk.has_room_for(item.size()) {
                self.carry = Some(item);
                break;
            }
            chunk.push(item);
        }
        Ok((chunk.items() > 0).then_some(chunk))
    }

    async fn next_item(&mut self, run: &JobRun) -> Result<Option<Item<'s>>> {
        for (id, text, subs) in self.rules.by_ref() {
            if let Some(group) = rule_group(run, &self.directives, id, &text, subs).await? {
                return Ok(Some(Item::Rule(group)));
            }
        }
        for sub in self.singles.by_ref() {
            if let Some(diff) = diff_of(run, &self.directives, sub.id).await? {
                return Ok(Some(Item::File(sub, diff)));
            }
        }
        Ok(None)
    }
}

/// The ids of the rules in `text`, joined by `+` (`rule` when it does not parse).
fn rule_id(text: &str) -> String {
    match parse_rules(text) {
        Ok(rules) => rules
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        Err(_) => "rule".to_owned(),
    }
}

/// `id`, or `id#2`, `id#3`, ... when two rule texts share ids.
fn unique_id(id: &str, taken: &[String]) -> String {
    let mut candidate = id.to_owned();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{id}#{n}");
    }
    candidate
}

/// The block of one rule over `subs` (path order): every file's diff is
/// measured, the [`pick_samples`] ones are kept. `None` when no file is left.
async fn rule_group<'s>(
    run: &JobRun,
    directives: &HashMap<SubtaskId, SubtaskDirective>,
    id: String,
    text: &str,
    subs: Vec<&'s SubtaskRecord>,
) -> Result<Option<RuleGroup<'s>>> {
    let mut kept = Vec::with_capacity(subs.len());
    let mut lengths = Vec::with_capacity(subs.len());
    for sub in subs {
        if let Some(diff) = diff_of(run, directives, sub.id).await? {
            lengths.push(diff.len());
            kept.push(sub);
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let mut samples = Vec::new();
    for i in pick_samples(&lengths, RULE_SAMPLES) {
        if let Some(diff) = diff_of(run, directives, kept[i].id).await? {
            samples.push((kept[i].path.clone(), diff));
        }
    }
    Ok(Some(RuleGroup {
        block: RuleBlock {
            id,
            yaml: text.to_owned(),
            files: kept.len(),
            samples,
        },
        subtasks: kept,
    }))
}

/// Which files (indices into path order) a rule block shows, at most
/// `most`, in path order: the largest diff, the smallest, the middle file,
/// then the files after the middle (ties go to the first in path order).
pub(super) fn pick_samples(lengths: &[usize], most: usize) -> Vec<usize> {
    let n = lengths.len();
    let mut largest = 0;
    let mut smallest = 0;
    for (i, &len) in lengths.iter().enumerate() {
        if len > lengths[largest] {
            largest = i;
        }
        if len < lengths[smallest] {
            smallest = i;
        }
    }
    let middle = n / 2;
    let candidates = [largest, smallest]
        .into_iter()
        .chain(middle..n)
        .chain(0..middle);
    let mut picked: Vec<usize> = Vec::with_capacity(most);
    for i in candidates.filter(|&i| i < n) {
        if picked.len() >= most {
            break;
        }
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked.sort_unstable();
    picked
}

/// A subtask's accepted change as a patch (`None`: the subtask is gone).
async fn diff_of(
    run: &JobRun,
    directives: &HashMap<SubtaskId, SubtaskDirective>,
    id: SubtaskId,
) -> Result<Option<String>> {
    let Some(full) = run.store().get_subtask(id).await? else {
        return Ok(None);
    };
    let old = full.original_content.as_deref().unwrap_or_default();
    let new = full.accepted_content.as_deref().unwrap_or_default();
    Ok(Some(match directives.get(&id) {
        None => unified_diff(&full.path, old, new),
        Some(d) => action_patch(&full.path, &FileAction::from_directive(Some(d)), old, new),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule block of `bytes` of rule text, over no files.
    fn rule_item(bytes: usize) -> Item<'static> {
        Item::Rule(RuleGroup {
            block: RuleBlock {
                id: "r".into(),
                yaml: "x".repeat(bytes),
                files: 1,
                samples: Vec::new(),
            },
            subtasks: Vec::new(),
        })
    }

    #[test]
    fn a_chunk_takes_at_most_100_items_and_about_200_kb() {
        let mut chunk = Chunk::default();
        for _ in 0..REVIEW_CHUNK_FILES {
            assert!(chunk.has_room_for(10));
            chunk.push(rule_item(10));
        }
        assert!(!chunk.has_room_for(10), "the 101st item waits");

        let mut chunk = Chunk::default();
        chunk.push(rule_item(150_000));
        assert!(chunk.has_room_for(50_000));
        assert!(!chunk.has_room_for(50_001));

        // An item larger than a chunk goes alone.
        let mut chunk = Chunk::default();
        assert!(chunk.has_room_for(3 * REVIEW_CHUNK_BYTES));
        chunk.push(rule_item(3 * REVIEW_CHUNK_BYTES));
        assert!(!chunk.has_room_for(1));
    }

    #[test]
    fn samples_are_the_largest_the_smallest_and_the_middle() {
        // Path order: 0..6; largest 4, smallest 1, middle 3.
        assert_eq!(pick_samples(&[5, 1, 7, 6, 9, 3], 3), vec![1, 3, 4]);
        // The middle is also the largest: the next file after it fills in.
        assert_eq!(pick_samples(&[2, 1, 9, 3, 4], 3), vec![1, 2, 3]);
        // Equal diffs: the first file is both; middle and the one after it.
        assert_eq!(pick_samples(&[4, 4, 4, 4], 3), vec![0, 2, 3]);
        // Small groups show every file.
        assert_eq!(pick_samples(&[3, 8], 3), vec![0, 1]);
        assert_eq!(pick_samples(&[3], 3), vec![0]);
        assert!(pick_samples(&[], 3).is_empty());
        // The middle's followers wrap round to the start.
        assert_eq!(pick_samples(&[1, 2, 3], 3), vec![0, 1, 2]);
    }

    #[test]
    fn rule_ids_are_unique_per_text() {
        let text = "id: a\nlanguage: python\nrule:\n  pattern: X\nfix: Y\n---\nid: b\nlanguage: python\nrule:\n  pattern: Z\nfix: W\n";
        assert_eq!(rule_id(text), "a+b");
        assert_eq!(rule_id("not: [a rule"), "rule");
        let taken = vec!["a+b".to_owned(), "a+b#2".to_owned()];
        assert_eq!(unique_id("a+b", &taken), "a+b#3");
        assert_eq!(unique_id("c", &taken), "c");
    }
}
