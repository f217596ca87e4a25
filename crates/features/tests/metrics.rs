//! Retrieval metrics on tiny cases worked out by hand.

use features::metrics::{distance, leave_one_out, query_vs_gallery, RetrievalMetrics};
use features::{DistanceKind, Embedding};

fn dense(xs: &[f32]) -> Vec<Embedding> {
    xs.iter().map(|&x| Embedding::Dense(vec![x])).collect()
}

fn labels(ls: &[&str]) -> Vec<String> {
    ls.iter().map(|s| s.to_string()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn assert_metrics(m: RetrievalMetrics, map: f64, p1: f64, p5: f64, p10: f64, r10: f64, queries: usize) {
    assert!(close(m.map, map), "mAP {} vs {map}", m.map);
    assert!(close(m.p_at_1, p1), "P@1 {} vs {p1}", m.p_at_1);
    assert!(close(m.p_at_5, p5), "P@5 {} vs {p5}", m.p_at_5);
    assert!(close(m.p_at_10, p10), "P@10 {} vs {p10}", m.p_at_10);
    assert!(close(m.recall_at_10, r10), "R@10 {} vs {r10}", m.recall_at_10);
    assert_eq!(m.queries, queries);
}

#[test]
fn leave_one_out_interleaved() {
    // Points on a line: 0.0 a, 1.0 b, 2.1 a, 3.3 b.
    // q0 (a): 1.0 b, 2.1 a, 3.3 b → relevant at rank 2: AP 1/2
    // q1 (b): 1.0 a, 1.1 a, 2.3 b → rank 3: AP 1/3
    // q2 (a): 1.1 b, 1.2 b, 2.1 a → rank 3: AP 1/3
    // q3 (b): 1.2 a, 2.3 b, 3.3 a → rank 2: AP 1/2
    // mAP = 5/12; P@1 = 0; P@5 = 1/5 and P@10 = 1/10 for every query; recall@10 = 1.
    let m = leave_one_out(&dense(&[0.0, 1.0, 2.1, 3.3]), &labels(&["a", "b", "a", "b"]), DistanceKind::L2);
    assert_metrics(m, 5.0 / 12.0, 0.0, 0.2, 0.1, 1.0, 4);
}

#[test]
fn leave_one_out_clusters_and_singletons() {
    // Two tight pairs and a singleton label: the singleton has no relevant item and is not
    // counted; every other query finds its partner first: AP 1, P@1 1.
    let m = leave_one_out(&dense(&[0.0, 0.5, 3.0, 3.4, 10.0]), &labels(&["a", "a", "b", "b", "c"]), DistanceKind::L2);
    assert_metrics(m, 1.0, 1.0, 0.2, 0.1, 1.0, 4);
}

#[test]
fn leave_one_out_with_more_than_ten() {
    // 12 items of label x at 0..12 and one y at 0.5. Query y has no partner: skipped.
    // Query x at position p: its 11 partners are all relevant; y sits at distance |p − 0.5|.
    // For p = 0 the ranking is y (0.5), x(1), x(2), …: relevant at ranks 2..=12:
    //   AP = (1/11)·Σ_{k=1..11} k/(k+1); P@1 = 0; P@10 = 9/10; R@10 = 9/11.
    // For p = 1: y (0.5) vs x at 0 and 2 (1.0): y first, same as p = 0.
    // For p ≥ 2: y is at distance ≥ 1.5, farther than the neighbours at 1: the ties at equal
    // distance are broken by index, and y (index 12) comes after every x at the same distance.
    let mut xs: Vec<f32> = (0..12).map(|i| i as f32).collect();
    xs.push(0.5);
    let mut ls = vec!["x"; 12];
    ls.push("y");
    let m = leave_one_out(&dense(&xs), &labels(&ls), DistanceKind::L2);
    // Compute the expectation by ranking explicitly (independent of the library's code path).
    let mut ap_sum = 0.0;
    let (mut p1, mut p5, mut p10, mut r10) = (0.0, 0.0, 0.0, 0.0);
    for q in 0..12usize {
        let mut order: Vec<(f32, usize)> = (0..13).filter(|&j| j != q).map(|j| ((xs[j] - xs[q]).abs(), j)).collect();
        order.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        let rel: Vec<bool> = order.iter().map(|&(_, j)| j < 12).collect();
        let mut hits = 0.0;
        let mut ap = 0.0;
        for (r, &is) in rel.iter().enumerate() {
            if is {
                hits += 1.0;
                ap += hits / (r + 1) as f64;
            }
        }
        ap_sum += ap / 11.0;
        let top = |k: usize| rel.iter().take(k).filter(|&&b| b).count() as f64;
        p1 += top(1);
        p5 += top(5) / 5.0;
        p10 += top(10) / 10.0;
        r10 += top(10) / 11.0;
    }
    assert_metrics(m, ap_sum / 12.0, p1 / 12.0, p5 / 12.0, p10 / 12.0, r10 / 12.0, 12);
    // And the p = 0 case by the closed form above.
    let ap0: f64 = (1..=11).map(|k| k as f64 / (k + 1) as f64).sum::<f64>() / 11.0;
    let single =
        query_vs_gallery(&dense(&[0.0]), &labels(&["x"]), &dense(&xs[1..]), &labels(&ls[1..]), DistanceKind::L2);
    assert_metrics(single, ap0, 0.0, 4.0 / 5.0, 9.0 / 10.0, 9.0 / 11.0, 1);
}

#[test]
fn query_vs_gallery_hamming() {
    // Query 0000_0000 (a). Gallery: 0000_0001 b (1 bit), 0000_0011 a (2 bits), 1111_1111 a (8 bits).
    // Ranking b, a, a: AP = (1/2 + 2/3)/2 = 7/12; P@1 0; P@5 2/5; P@10 2/10; R@10 1.
    let q = vec![Embedding::Binary(vec![0b0000_0000])];
    let g =
        vec![Embedding::Binary(vec![0b0000_0001]), Embedding::Binary(vec![0b0000_0011]), Embedding::Binary(vec![0xFF])];
    let m = query_vs_gallery(&q, &labels(&["a"]), &g, &labels(&["b", "a", "a"]), DistanceKind::Hamming);
    assert_metrics(m, 7.0 / 12.0, 0.0, 0.4, 0.2, 1.0, 1);
    // Ties are broken by gallery order: two items at the same distance, relevant one second.
    let g = vec![Embedding::Binary(vec![1]), Embedding::Binary(vec![1])];
    let m = query_vs_gallery(&q, &labels(&["a"]), &g, &labels(&["b", "a"]), DistanceKind::Hamming);
    assert!(close(m.map, 0.5));
    // A query whose label is absent from the gallery is not counted.
    let m = query_vs_gallery(&q, &labels(&["z"]), &g, &labels(&["b", "a"]), DistanceKind::Hamming);
    assert_eq!(m.queries, 0);
    assert_eq!(m.map, 0.0);
}

#[test]
fn distances_in_user_units() {
    let a = Embedding::Dense(vec![3.0, 0.0]);
    let b = Embedding::Dense(vec![0.0, 4.0]);
    assert_eq!(distance(&a, &b, DistanceKind::L2), 5.0);
    assert!((distance(&a, &b, DistanceKind::Cosine) - 1.0).abs() < 1e-6);
    assert!(distance(&a, &Embedding::Dense(vec![6.0, 0.0]), DistanceKind::Cosine).abs() < 1e-6);
    assert_eq!(
        distance(&Embedding::Binary(vec![0xF0, 1]), &Embedding::Binary(vec![0x0F, 1]), DistanceKind::Hamming),
        8.0
    );
    assert_eq!(distance(&a, &Embedding::Binary(vec![0]), DistanceKind::L2), f32::INFINITY);
    assert_eq!(distance(&a, &Embedding::Dense(vec![1.0]), DistanceKind::L2), f32::INFINITY);
}
