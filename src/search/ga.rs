//! Genetic operators: random genomes, tournament selection, elitism, crossover, mutation, each
//! walking the gene table (`genes::GENES`).
//!
//! All randomness comes from one seeded ChaCha stream that the checkpoint saves and restores, so
//! a resumed run breeds exactly the children an uninterrupted one would. lr, ε, weight decay and
//! clipping move in log10 space (their files hold plain values); β and Lookahead's α move in
//! clamped additive steps; term weights move by log-normal factors. Mutation strength falls
//! linearly over the generations.
use crate::genome::genes::GaParams;
use crate::genome::genes::{copy_gene, GeneKind, GENES, SIGN_DECAYS};
use crate::genome::{Genome, Lookahead, SignDecay, Term};
use crate::search::records::Origin;
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ga {
    pub params: GaParams,
    /// Shortest task length, for warmup lengths.
    pub min_steps: u64,
    rng: ChaCha20Rng,
}

impl Ga {
    pub fn new(seed: u64, params: GaParams, min_steps: u64) -> Ga {
        Ga {
            params,
            min_steps,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    fn gauss(&mut self) -> f64 {
        // Box–Muller: one standard normal draw.
        let u1: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p.clamp(0.0, 1.0))
    }

    fn uniform(&mut self, range: [f64; 2]) -> f64 {
        if range[1] > range[0] {
            self.rng.gen_range(range[0]..range[1])
        } else {
            range[0]
        }
    }

    fn log_uniform(&mut self, log10_range: [f64; 2]) -> f64 {
        10f64.powf(self.uniform(log10_range))
    }

    fn random_term(&mut self) -> Term {
        let kind = *self
            .params
            .kinds
            .choose(&mut self.rng)
            .expect("validated non-empty");
        let [lo, hi] = self.params.term_weight;
        Term {
            kind,
            weight: self.log_uniform([lo.log10(), hi.log10()]),
        }
    }

    fn random_warmup(&mut self) -> u64 {
        (self.uniform(self.params.warmup_fraction) * self.min_steps as f64).round() as u64
    }

    fn random_lookahead(&mut self) -> Option<Lookahead> {
        let [lo, hi] = self.params.lookahead_k;
        Some(Lookahead {
            k: self.rng.gen_range(lo..=hi),
            alpha: self.uniform(self.params.lookahead_alpha),
        })
    }

    fn random_sign_decay(&mut self, not: SignDecay) -> SignDecay {
        let others: Vec<SignDecay> = SIGN_DECAYS.into_iter().filter(|&d| d != not).collect();
        *others.choose(&mut self.rng).expect("three schedules")
    }

    /// A genome drawn gene by gene (see `genes::GENES`) from the ranges in `GaParams`.
    pub fn random_genome(&mut self) -> Genome {
        let mut g = crate::genome::adam_baseline();
        g.name = None;
        for gene in &GENES {
            self.draw(&gene.kind, &mut g);
        }
        g
    }

    /// Draws gene `kind` of `g` afresh.
    fn draw(&mut self, kind: &GeneKind, g: &mut Genome) {
        let p = self.params.clone();
        match kind {
            GeneKind::Terms => {
                let n = self.rng.gen_range(1..=p.max_terms);
                g.terms = (0..n).map(|_| self.random_term()).collect();
            }
            GeneKind::Log {
                set, range, p_on, ..
            } => {
                let on = p_on.is_none_or(|p| self.chance(p));
                let value = self.log_uniform(range(&p));
                set(g, on.then_some(value));
            }
            GeneKind::Bounded { set, range, .. } => set(g, self.uniform(range(&p))),
            GeneKind::Flag { set, p_on, .. } => set(g, self.chance(*p_on)),
            GeneKind::SignDecay { p_other } => {
                g.sign_decay = match self.chance(*p_other) {
                    true => self.random_sign_decay(SignDecay::Off),
                    false => SignDecay::Off,
                }
            }
            GeneKind::Warmup { p_on } => {
                g.warmup_steps = match self.chance(*p_on) {
                    true => self.random_warmup(),
                    false => 0,
                }
            }
            GeneKind::Lookahead { p_on } => {
                g.lookahead = match self.chance(*p_on) {
                    true => self.random_lookahead(),
                    false => None,
                }
            }
        }
    }

    /// `seeds` (named) first, cut to `size`, the rest random.
    pub fn initial_population(&mut self, size: usize, seeds: Vec<(String, Genome)>) -> Vec<Child> {
        let mut population: Vec<Child> = seeds
            .into_iter()
            .take(size)
            .map(|(name, genome)| Child {
                genome,
                origin: Origin::Seed { name },
            })
            .collect();
        while population.len() < size {
            population.push(Child {
                genome: self.random_genome(),
                origin: Origin::Random,
            });
        }
        population
    }

    /// The index of the fittest of `k` drawn at random (with replacement).
    pub fn tournament(&mut self, fitness: &[f64], k: usize) -> usize {
        (0..k.max(1))
            .map(|_| self.rng.gen_range(0..fitness.len()))
            .max_by(|&a, &b| fitness[a].total_cmp(&fitness[b]).then(b.cmp(&a)))
            .expect("k ≥ 1")
    }

    /// One-point crossover on the term lists (bounded by `max_terms`), uniform on every other
    /// gene.
    pub fn crossover(&mut self, a: &Genome, b: &Genome) -> Genome {
        let i = self.rng.gen_range(0..=a.terms.len());
        let j = self.rng.gen_range(0..=b.terms.len());
        let mut terms: Vec<Term> = a.terms[..i].iter().chain(&b.terms[j..]).cloned().collect();
        terms.truncate(self.params.max_terms);
        if terms.is_empty() {
            terms.push(a.terms[0].clone());
        }
        let mut child = Genome {
            name: None,
            terms,
            ..a.clone()
        };
        for gene in GENES.iter().filter(|g| !matches!(g.kind, GeneKind::Terms)) {
            if self.rng.gen_bool(0.5) {
                copy_gene(&gene.kind, &mut child, b);
            }
        }
        child
    }

    /// A Gaussian step of a log10-scaled value, kept inside its range.
    fn log_step(&mut self, x: f64, range: [f64; 2], strength: f64) -> f64 {
        let sigma = self.params.log_sigma * strength;
        10f64.powf((x.log10() + sigma * self.gauss()).clamp(range[0], range[1]))
    }

    /// A clamped Gaussian step of `beta_sigma`.
    fn bounded_step(&mut self, x: f64, range: [f64; 2], strength: f64) -> f64 {
        (x + self.params.beta_sigma * strength * self.gauss()).clamp(range[0], range[1])
    }

    /// Mutates `g` at `strength` (1 at the first generation, `final_strength` at the last),
    /// gene by gene.
    pub fn mutate(&mut self, g: &Genome, strength: f64) -> Genome {
        let mut c = g.clone();
        c.name = None;
        for gene in &GENES {
            self.mutate_gene(&gene.kind, &mut c, strength);
        }
        c
    }

    /// Mutates the gene `kind` of `c`, at `strength` (see `GeneKind`).
    fn mutate_gene(&mut self, kind: &GeneKind, c: &mut Genome, strength: f64) {
        let p = self.params.clone();
        let (rate, flip) = (p.mutation_rate, p.flag_flip_rate);
        match kind {
            GeneKind::Terms => self.mutate_terms(c, strength),
            GeneKind::Log {
                get,
                set,
                range,
                p_on,
                ..
            } => {
                let value = self.mutate_log(get(c), range(&p), p_on.is_some(), strength);
                set(c, value);
            }
            GeneKind::Bounded {
                get, set, range, ..
            } => {
                if self.chance(rate) {
                    let x = self.bounded_step(get(c), range(&p), strength);
                    set(c, x);
                }
            }
            GeneKind::Flag { get, set, .. } => {
                if self.chance(flip) {
                    set(c, !get(c));
                }
            }
            GeneKind::SignDecay { .. } => {
                if self.chance(flip) {
                    c.sign_decay = self.random_sign_decay(c.sign_decay);
                }
            }
            GeneKind::Warmup { .. } => self.mutate_warmup(c),
            GeneKind::Lookahead { .. } => self.mutate_lookahead(c, strength),
        }
    }

    /// A log-scaled scalar takes a Gaussian step in log10 (when set); an optional one is
    /// switched on (drawn afresh) or off with the flip rate.
    fn mutate_log(
        &mut self,
        value: Option<f64>,
        range: [f64; 2],
        optional: bool,
        strength: f64,
    ) -> Option<f64> {
        let mut value = value;
        if let Some(x) = value.filter(|_| self.chance(self.params.mutation_rate)) {
            value = Some(self.log_step(x, range, strength));
        }
        if optional && self.chance(self.params.flag_flip_rate) {
            value = match value {
                Some(_) => None,
                None => Some(self.log_uniform(range)),
            };
        }
        value
    }

    /// A warmup is redrawn, or switched on or off.
    fn mutate_warmup(&mut self, c: &mut Genome) {
        if c.warmup_steps > 0 && self.chance(self.params.mutation_rate) {
            c.warmup_steps = self.random_warmup();
        }
        if self.chance(self.params.flag_flip_rate) {
            c.warmup_steps = match c.warmup_steps {
                0 => self.random_warmup(),
                _ => 0,
            };
        }
    }

    /// Lookahead's k moves by ±1 and α by a clamped step; Lookahead is switched on or off.
    fn mutate_lookahead(&mut self, c: &mut Genome, strength: f64) {
        let p = self.params.clone();
        if let Some(la) = &mut c.lookahead {
            if self.chance(p.mutation_rate) {
                let [lo, hi] = p.lookahead_k;
                let step: i64 = if self.rng.gen_bool(0.5) { 1 } else { -1 };
                la.k = (la.k as i64 + step).clamp(lo as i64, hi as i64) as u64;
            }
            if self.chance(p.mutation_rate) {
                la.alpha = self.bounded_step(la.alpha, p.lookahead_alpha, strength);
            }
        }
        if self.chance(p.flag_flip_rate) {
            c.lookahead = match c.lookahead {
                Some(_) => None,
                None => self.random_lookahead(),
            };
        }
    }

    /// Term weights move by log-normal factors; a term is added, removed or changed.
    fn mutate_terms(&mut self, c: &mut Genome, strength: f64) {
        let p = self.params.clone();
        let [wlo, whi] = p.term_weight;
        for i in 0..c.terms.len() {
            if self.chance(p.mutation_rate) {
                let factor = (p.weight_sigma * strength * self.gauss()).exp();
                c.terms[i].weight = (c.terms[i].weight * factor).clamp(wlo, whi);
            }
        }
        if c.terms.len() < p.max_terms && self.chance(p.add_term_rate) {
            let term = self.random_term();
            c.terms.push(term);
        }
        if c.terms.len() > 1 && self.chance(p.remove_term_rate) {
            let i = self.rng.gen_range(0..c.terms.len());
            c.terms.remove(i);
        }
        if self.chance(p.change_term_rate) {
            let i = self.rng.gen_range(0..c.terms.len());
            c.terms[i].kind = *self
                .params
                .kinds
                .choose(&mut self.rng)
                .expect("validated non-empty");
        }
    }

    /// The next population: the `elites` fittest unchanged, the rest bred by tournament selection,
    /// crossover and mutation at the strength annealed for `generation` of `generations`.
    pub fn next_generation(
        &mut self,
        population: &[Genome],
        fitness: &[f64],
        elites: usize,
        tournament: usize,
        generation: usize,
        generations: usize,
    ) -> Vec<Child> {
        let mut order: Vec<usize> = (0..population.len()).collect();
        order.sort_by(|&a, &b| fitness[b].total_cmp(&fitness[a]).then(a.cmp(&b)));
        let mut next: Vec<Child> = order
            .iter()
            .take(elites)
            .map(|&i| Child {
                genome: population[i].clone(),
                origin: Origin::Elite {
                    parent: population[i].hash(),
                },
            })
            .collect();
        let progress = if generations > 1 {
            generation as f64 / (generations - 1) as f64
        } else {
            1.0
        };
        let strength = 1.0 + (self.params.final_strength - 1.0) * progress.clamp(0.0, 1.0);
        while next.len() < population.len() {
            let a = self.tournament(fitness, tournament);
            let (child, crossed) = if self.chance(self.params.crossover_rate) {
                let b = self.tournament(fitness, tournament);
                let child = self.crossover(&population[a], &population[b]);
                (child, Some(b))
            } else {
                (population[a].clone(), None)
            };
            let genome = self.mutate(&child, strength);
            let genes = changed_genes(&child, &genome);
            let origin = match crossed {
                Some(b) => Origin::Crossover {
                    parents: [population[a].hash(), population[b].hash()],
                    genes,
                },
                None => Origin::Mutation {
                    parent: population[a].hash(),
                    genes,
                },
            };
            next.push(Child { genome, origin });
        }
        next
    }
}

/// A genome of the next generation and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub genome: Genome,
    pub origin: Origin,
}

/// The genomes of `children`, their origins dropped.
pub fn genomes(children: Vec<Child>) -> Vec<Genome> {
    children.into_iter().map(|c| c.genome).collect()
}

/// The genes (genome fields) in which `after` differs from `before`.
fn changed_genes(before: &Genome, after: &Genome) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(before).expect("plain data serialises"),
        serde_json::to_value(after).expect("plain data serialises"),
    );
    GENES
        .iter()
        .filter(|gene| a.get(gene.field) != b.get(gene.field))
        .map(|gene| gene.field.to_string())
        .collect()
}
