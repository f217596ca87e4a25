//! The class-balanced batch sampler: every batch is made of groups of one label, so every vector in it
//! has a positive pair.

use rand::seq::SliceRandom;

/// One epoch's batches: each class's members shuffled and cut into groups of `per_class` (a last single
/// member joins the previous group), groups shuffled and packed into batches of about `batch_size`.
/// Every vector appears once per epoch, and every group brings positive pairs.
pub(super) fn class_balanced_batches(
    members: &[Vec<usize>],
    per_class: usize,
    batch_size: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for m in members {
        let mut m = m.clone();
        m.shuffle(rng);
        let mut chunks: Vec<Vec<usize>> = m.chunks(per_class).map(<[usize]>::to_vec).collect();
        if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() < 2) {
            let last = chunks.pop().unwrap_or_default();
            if let Some(prev) = chunks.last_mut() {
                prev.extend(last);
            }
        }
        groups.extend(chunks);
    }
    groups.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for g in groups {
        if !cur.is_empty() && cur.len() + g.len() > batch_size {
            batches.push(std::mem::take(&mut cur));
        }
        cur.extend(g);
    }
    if !cur.is_empty() {
        // A last batch of one class has no negatives: fold it into the previous batch.
        match batches.last_mut() {
            Some(prev) if cur.len() < batch_size / 2 => prev.extend(cur),
            _ => batches.push(cur),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn batches_cover_every_vector_once_with_positives() {
        let members: Vec<Vec<usize>> =
            vec![(0..7).collect(), (7..10).collect(), (10..12).collect(), (12..30).collect()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let batches = class_balanced_batches(&members, 4, 16, &mut rng);
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        let class = |i: usize| members.iter().position(|m| m.contains(&i)).unwrap();
        for b in &batches {
            assert!(b.len() <= 16 + 8, "batch of {}", b.len());
            // Every member of a batch has a positive in it.
            for &i in b {
                assert!(b.iter().any(|&j| j != i && class(j) == class(i)), "{i} alone in {b:?}");
            }
        }
    }
}
