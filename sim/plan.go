package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Roles of a node slot.
const (
	RoleServer = "server" // runs jobs, serves the DHT
	RoleClient = "client" // submits jobs; a DHT client
	RoleJoiner = "joiner" // a server that joins later (churn)
)

// Plan is everything a seed fixes, worked out before anything runs: the
// node slots (identities, links, bootstrap peers, roles and misbehaviours),
// the jobs and the fault schedule. Two plans from the same scenario are
// equal.
type Plan struct {
	Seed    uint64
	Servers int // slots [0, Servers)
	Clients int // slots [Servers, Servers+Clients); joiners after
	Slots   []Slot
	Jobs    []JobPlan
	Events  []Event
}

// Slot is one node position in the simulated network.
type Slot struct {
	Index        int
	Role         string
	Behaviour    string        // "" for an honest node
	Latency      time.Duration // one-way access latency
	Bootstrap    []int         // slots it bootstraps through
	Wave         int           // join wave; -1 for joiners (started by a join event)
	StartOffset  time.Duration // when in its wave it starts: joins are spread, not simultaneous
	IdentitySeed [32]byte
}

// JobPlan is one job of the workload.
type JobPlan struct {
	ID     int
	At     time.Duration // after the workload starts
	Client int           // slot of the submitting client
	Module string
	Args   []string
	Stdin  string
	Seed   int64 // deterministic-mode seed
}

// Event kinds of the fault schedule.
const (
	EvCrash     = "crash"
	EvRestart   = "restart"
	EvPartition = "partition"
	EvHeal      = "heal"
	EvLeave     = "leave"
	EvJoin      = "join"
	EvSlow      = "slow"
	EvUnslow    = "unslow"
	EvLoss      = "loss"
)

// Event is one step of the fault schedule.
type Event struct {
	At     time.Duration // after the workload starts
	Kind   string
	Fault  int     // index of the scenario fault it comes from
	Nodes  []int   // slots affected (partition: the side cut off)
	Factor float64 // slow
	Loss   float64 // loss: the new probability
}

// Separate random streams, so that changing one part of a scenario (the
// workload, say) leaves the others (topology, faults) as they were.
const (
	streamTopology = iota + 1
	streamRoles
	streamWorkload
	streamFaults
)

func rng(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x706c61736d73696d^stream))
}

// words feed hello's and echo's random arguments.
var words = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "phase", "plasm"}

// MakePlan works out the plan of a validated scenario.
func MakePlan(sc Scenario) Plan {
	p := Plan{Seed: sc.Seed, Servers: sc.Nodes, Clients: sc.Clients}
	topo := rng(sc.Seed, streamTopology)
	newSlot := func(role string, wave int) Slot {
		i := len(p.Slots)
		spread := sc.Network.LatencySpread
		factor := 1 - spread + 2*spread*topo.Float64()
		// Two access links make one path: half the mean each.
		lat := time.Duration(float64(sc.Network.Latency.D()) / 2 * factor)
		var offset time.Duration
		if wave >= 0 && sc.Network.WaveInterval > 0 {
			offset = time.Duration(topo.Int64N(int64(sc.Network.WaveInterval)))
		}
		return Slot{Index: i, Role: role, Latency: lat, Wave: wave, StartOffset: offset, IdentitySeed: identitySeed(sc.Seed, i)}
	}
	boot := min(sc.Network.BootstrapNodes, sc.Nodes)
	pickBoot := func(self int) []int {
		pool := make([]int, 0, boot)
		for b := range boot {
			if b != self && (self >= boot || b < self) { // bootstrap nodes chain to earlier ones
				pool = append(pool, b)
			}
		}
		topo.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		out := pool[:min(len(pool), sc.Network.BootstrapPerNode)]
		slices.Sort(out)
		return out
	}
	for i := range sc.Nodes {
		s := newSlot(RoleServer, i/sc.Network.WaveSize)
		s.Bootstrap = pickBoot(i)
		p.Slots = append(p.Slots, s)
	}
	lastWave := (sc.Nodes - 1) / sc.Network.WaveSize
	for range sc.Clients {
		s := newSlot(RoleClient, lastWave+1)
		s.Bootstrap = pickBoot(len(p.Slots))
		p.Slots = append(p.Slots, s)
	}

	// Misbehaving nodes: never a bootstrap node, so the network can form.
	roles := rng(sc.Seed, streamRoles)
	candidates := make([]int, 0, sc.Nodes)
	for i := boot; i < sc.Nodes; i++ {
		candidates = append(candidates, i)
	}
	roles.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	behaviours := sc.Misbehaving.Behaviours
	if len(behaviours) == 0 {
		behaviours = DefaultBehaviours()
	}
	nBad := min(int(math.Round(sc.Misbehaving.Fraction*float64(sc.Nodes))), len(candidates))
	liars := slices.Clone(candidates[:nBad])
	slices.Sort(liars)
	for k, i := range liars {
		p.Slots[i].Behaviour = behaviours[k%len(behaviours)]
		p.Slots[i].Latency = time.Duration(float64(p.Slots[i].Latency) * sc.Misbehaving.LatencyFactor)
	}

	p.Jobs = planJobs(sc, p.Servers)
	p.Events = planFaults(sc, &p, newSlot, pickBoot)
	return p
}

func identitySeed(seed uint64, slot int) [32]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(slot))
	return sha256.Sum256(append([]byte("plasmsim/identity/v1:"), b[:]...))
}

func planJobs(sc Scenario, firstClient int) []JobPlan {
	w := rng(sc.Seed, streamWorkload)
	total := 0
	for _, m := range sc.Workload.Mix {
		total += m.Weight
	}
	jobs := make([]JobPlan, sc.Workload.Jobs)
	ats := make([]time.Duration, len(jobs))
	for i := range ats {
		ats[i] = time.Duration(w.Int64N(int64(sc.Workload.Duration.D()) + 1))
	}
	slices.Sort(ats)
	// A bounded set of argument lists and one deterministic-mode seed per
	// run: the oracle then runs each distinct job once, not every job.
	phrases := make([][]string, 32)
	for i := range phrases {
		for range 1 + w.IntN(4) {
			phrases[i] = append(phrases[i], words[w.IntN(len(words))])
		}
	}
	jobSeed := int64(w.Uint64() >> 1)
	for i := range jobs {
		pick := w.IntN(total)
		var m Module
		for _, m = range sc.Workload.Mix {
			if pick < m.Weight {
				break
			}
			pick -= m.Weight
		}
		args := slices.Clone(m.Args)
		if len(args) == 0 && (m.Module == "hello" || m.Module == "echo") {
			args = slices.Clone(phrases[w.IntN(len(phrases))])
		}
		jobs[i] = JobPlan{
			ID: i, At: ats[i], Client: firstClient + w.IntN(sc.Clients),
			Module: m.Module, Args: args, Stdin: m.Stdin, Seed: jobSeed,
		}
	}
	return jobs
}

func planFaults(sc Scenario, p *Plan, newSlot func(string, int) Slot, pickBoot func(int) []int) []Event {
	f := rng(sc.Seed, streamFaults)
	boot := min(sc.Network.BootstrapNodes, sc.Nodes)
	// A node is the target of at most one crash or churn fault.
	free := make([]int, 0, sc.Nodes)
	for i := boot; i < sc.Nodes; i++ {
		free = append(free, i)
	}
	f.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	take := func(n int) []int {
		n = min(n, len(free))
		out := slices.Clone(free[:n])
		free = free[n:]
		slices.Sort(out)
		return out
	}
	count := func(ft Fault) int {
		if ft.Count > 0 {
			return ft.Count
		}
		return max(1, int(math.Round(ft.Fraction*float64(sc.Nodes))))
	}
	var evs []Event
	for k, ft := range sc.Faults {
		at, d := ft.At.D(), ft.Duration.D()
		switch ft.Kind {
		case FaultCrash:
			nodes := take(count(ft))
			if len(ft.Nodes) > 0 {
				nodes = slices.Sorted(slices.Values(ft.Nodes))
			}
			evs = append(evs, Event{At: at, Kind: EvCrash, Fault: k, Nodes: nodes})
			if d > 0 {
				evs = append(evs, Event{At: at + d, Kind: EvRestart, Fault: k, Nodes: nodes})
			}
		case FaultPartition:
			// The cut-off side is drawn from the servers; clients stay on
			// the majority side, so their jobs must fail over to it.
			servers := make([]int, sc.Nodes)
			for i := range servers {
				servers[i] = i
			}
			f.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
			cut := max(1, int(math.Round(ft.Fraction*float64(sc.Nodes))))
			nodes := slices.Clone(servers[:cut])
			if len(ft.Nodes) > 0 {
				nodes = slices.Clone(ft.Nodes)
			}
			slices.Sort(nodes)
			evs = append(evs, Event{At: at, Kind: EvPartition, Fault: k, Nodes: nodes})
			if d > 0 {
				evs = append(evs, Event{At: at + d, Kind: EvHeal, Fault: k, Nodes: nodes})
			}
		case FaultChurn:
			steps := int(d.Seconds() * ft.Rate)
			step := time.Duration(float64(time.Second) / ft.Rate)
			for s := range steps {
				t := at + time.Duration(s)*step + time.Duration(f.Int64N(int64(step)))
				if left := take(1); len(left) == 1 {
					evs = append(evs, Event{At: t, Kind: EvLeave, Fault: k, Nodes: left})
				}
				j := newSlot(RoleJoiner, -1)
				j.Bootstrap = pickBoot(j.Index)
				p.Slots = append(p.Slots, j)
				evs = append(evs, Event{At: t, Kind: EvJoin, Fault: k, Nodes: []int{j.Index}})
			}
		case FaultSlow:
			all := make([]int, sc.Nodes)
			for i := range all {
				all[i] = i
			}
			f.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			nodes := slices.Clone(all[:min(count(ft), len(all))])
			if len(ft.Nodes) > 0 {
				nodes = slices.Clone(ft.Nodes)
			}
			slices.Sort(nodes)
			evs = append(evs, Event{At: at, Kind: EvSlow, Fault: k, Nodes: nodes, Factor: ft.Factor})
			if d > 0 {
				evs = append(evs, Event{At: at + d, Kind: EvUnslow, Fault: k, Nodes: nodes})
			}
		case FaultLoss:
			evs = append(evs, Event{At: at, Kind: EvLoss, Fault: k, Loss: ft.Loss})
			if d > 0 {
				evs = append(evs, Event{At: at + d, Kind: EvLoss, Fault: k, Loss: sc.Network.Loss})
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At < evs[j].At })
	return evs
}

// Describe is the schedule in words, one line per event.
func (p Plan) Describe() []string {
	var out []string
	for _, e := range p.Events {
		line := fmt.Sprintf("t+%v %s", e.At.Round(time.Millisecond), e.Kind)
		switch e.Kind {
		case EvSlow:
			line += fmt.Sprintf(" ×%g", e.Factor)
		case EvLoss:
			line += fmt.Sprintf(" p=%g", e.Loss)
		}
		if len(e.Nodes) > 0 {
			line += fmt.Sprintf(" nodes %s", nodeList(e.Nodes))
		}
		out = append(out, line)
	}
	return out
}

// nodeList prints slot numbers, shortened when there are many.
func nodeList(ns []int) string {
	const show = 8
	if len(ns) <= show {
		return fmt.Sprint(ns)
	}
	return fmt.Sprintf("%v… (%d)", ns[:show], len(ns))
}

// Liars returns the slots of misbehaving nodes by behaviour.
func (p Plan) Liars() map[string][]int {
	out := map[string][]int{}
	for _, s := range p.Slots {
		if s.Behaviour != "" {
			out[s.Behaviour] = append(out[s.Behaviour], s.Index)
		}
	}
	return out
}
