//! Genetic operators: random genomes, tournament selection, elitism, crossover, mutation.
//!
//! All randomness comes from one seeded ChaCha stream that the checkpoint saves and restores, so
//! a resumed run breeds exactly the children an uninterrupted one would. lr, ε and weight decay
//! move in log10 space (their files hold plain values); β moves in clamped additive steps; term
//! weights move by log-normal factors. Mutation strength falls linearly over the generations.
use crate::config::GaParams;
use crate::genome::{Genome, Lookahead, SignDecay, Term, TermKind};
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
        let kind = *TermKind::ALL.choose(&mut self.rng).expect("non-empty");
        let [lo, hi] = self.params.term_weight;
        Term {
            kind,
            weight: self.log_uniform([lo.log10(), hi.log10()]),
        }
    }

    fn random_warmup(&mut self) -> u64 {
        (self.uniform(self.params.warmup_fraction) * self.min_steps as f64).round() as u64
    }

    /// A genome drawn from the documented ranges in `GaParams`.
    pub fn random_genome(&mut self) -> Genome {
        let p = self.params.clone();
        let n_terms = self.rng.gen_range(1..=p.max_terms);
        Genome {
            name: None,
            terms: (0..n_terms).map(|_| self.random_term()).collect(),
            lr: self.log_uniform(p.lr_log10),
            beta1: self.uniform(p.beta1),
            beta2: self.uniform(p.beta2),
            eps: self.log_uniform(p.eps_log10),
            weight_decay: if self.chance(0.5) {
                self.log_uniform(p.weight_decay_log10)
            } else {
                0.0
            },
            bias_correction: self.chance(0.5),
            use_m: !self.chance(0.1),
            use_v: !self.chance(0.1),
            grad_clip: None,
            warmup_steps: if self.chance(0.5) {
                self.random_warmup()
            } else {
                0
            },
            cosine_decay: self.chance(0.5),
            sign_decay: SignDecay::Off,
            radam: self.chance(0.1),
            trust_ratio: self.chance(0.1),
            diffgrad: self.chance(0.1),
            lookahead: if self.chance(0.1) {
                Some(Lookahead {
                    k: self.rng.gen_range(5..=10),
                    alpha: 0.5,
                })
            } else {
                None
            },
        }
    }

    /// `seeds` first (cut to `size`), the rest random.
    pub fn initial_population(&mut self, size: usize, seeds: Vec<Genome>) -> Vec<Genome> {
        let mut population: Vec<Genome> = seeds.into_iter().take(size).collect();
        while population.len() < size {
            population.push(self.random_genome());
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

    /// One-point crossover on the term lists (bounded by `max_terms`), uniform on scalars and flags.
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
        // Uniform crossover: each scalar and flag from either parent with equal chance.
        macro_rules! from_either {
            ($($field:ident),*) => {$(
                if self.rng.gen_bool(0.5) {
                    child.$field = b.$field.clone();
                }
            )*};
        }
        from_either!(
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            bias_correction,
            use_m,
            use_v,
            grad_clip,
            warmup_steps,
            cosine_decay,
            sign_decay,
            radam,
            trust_ratio,
            diffgrad,
            lookahead
        );
        child
    }

    /// A Gaussian step of a log10-scaled value, kept inside its range.
    fn log_step(&mut self, x: f64, range: [f64; 2], strength: f64) -> f64 {
        let sigma = self.params.log_sigma * strength;
        10f64.powf((x.log10() + sigma * self.gauss()).clamp(range[0], range[1]))
    }

    /// Mutates `g` at `strength` (1 at the first generation, `final_strength` at the last).
    pub fn mutate(&mut self, g: &Genome, strength: f64) -> Genome {
        let p = self.params.clone();
        let mut c = g.clone();
        c.name = None;
        let rate = p.mutation_rate;
        if self.chance(rate) {
            c.lr = self.log_step(c.lr, p.lr_log10, strength);
        }
        if self.chance(rate) {
            c.eps = self.log_step(c.eps, p.eps_log10, strength);
        }
        if c.weight_decay > 0.0 && self.chance(rate) {
            c.weight_decay = self.log_step(c.weight_decay, p.weight_decay_log10, strength);
        }
        if self.chance(rate) {
            c.beta1 =
                (c.beta1 + p.beta_sigma * strength * self.gauss()).clamp(p.beta1[0], p.beta1[1]);
        }
        if self.chance(rate) {
            c.beta2 =
                (c.beta2 + p.beta_sigma * strength * self.gauss()).clamp(p.beta2[0], p.beta2[1]);
        }
        let [wlo, whi] = p.term_weight;
        for i in 0..c.terms.len() {
            if self.chance(rate) {
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
            c.terms[i].kind = *TermKind::ALL.choose(&mut self.rng).expect("non-empty");
        }
        let flip = p.flag_flip_rate;
        macro_rules! flip {
            ($($flag:ident),*) => {$(
                if self.chance(flip) {
                    c.$flag = !c.$flag;
                }
            )*};
        }
        flip!(
            bias_correction,
            cosine_decay,
            radam,
            trust_ratio,
            diffgrad,
            use_m,
            use_v
        );
        if self.chance(flip) {
            c.warmup_steps = if c.warmup_steps > 0 {
                0
            } else {
                self.random_warmup()
            };
        }
        if self.chance(flip) {
            c.weight_decay = if c.weight_decay > 0.0 {
                0.0
            } else {
                self.log_uniform(p.weight_decay_log10)
            };
        }
        if self.chance(flip) {
            c.lookahead = match c.lookahead {
                Some(_) => None,
                None => Some(Lookahead {
                    k: self.rng.gen_range(5..=10),
                    alpha: 0.5,
                }),
            };
        }
        if self.chance(flip) {
            c.grad_clip = match c.grad_clip {
                Some(_) => None,
                None => Some(self.log_uniform([-1.0, 1.0])),
            };
        }
        c
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
    ) -> Vec<Genome> {
        let mut order: Vec<usize> = (0..population.len()).collect();
        order.sort_by(|&a, &b| fitness[b].total_cmp(&fitness[a]).then(a.cmp(&b)));
        let mut next: Vec<Genome> = order
            .iter()
            .take(elites)
            .map(|&i| population[i].clone())
            .collect();
        let progress = if generations > 1 {
            generation as f64 / (generations - 1) as f64
        } else {
            1.0
        };
        let strength = 1.0 + (self.params.final_strength - 1.0) * progress.clamp(0.0, 1.0);
        while next.len() < population.len() {
            let a = self.tournament(fitness, tournament);
            let child = if self.chance(self.params.crossover_rate) {
                let b = self.tournament(fitness, tournament);
                self.crossover(&population[a], &population[b])
            } else {
                population[a].clone()
            };
            next.push(self.mutate(&child, strength));
        }
        next
    }
}
