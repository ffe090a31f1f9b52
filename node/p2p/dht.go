package p2p

import (
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
)

// ProtocolPrefix keeps the Phase DHT private: its protocol IDs are
// /phase/kad/1.0.0, so a node can never join the public IPFS DHT.
const ProtocolPrefix = "/phase"

// DHTOptions configures the node's DHT.
type DHTOptions struct {
	Client     bool // pure clients query but do not serve
	BucketSize int
	// Validators are the record namespaces the DHT accepts besides "pk".
	Validators map[string]record.Validator
	Extra      []dht.Option
}

// NewDHT starts the private Kademlia DHT on h. It does not bootstrap; a
// Bootstrapper does that, with retries.
func NewDHT(h host.Host, o DHTOptions) (*dht.IpfsDHT, error) {
	mode := dht.ModeServer
	if o.Client {
		mode = dht.ModeClient
	}
	validator := record.NamespacedValidator{"pk": record.PublicKeyValidator{}}
	for ns, v := range o.Validators {
		validator[ns] = v
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(ProtocolPrefix),
		dht.Validator(validator),
	}
	if o.BucketSize > 0 {
		opts = append(opts, dht.BucketSize(o.BucketSize))
	}
	opts = append(opts, o.Extra...)
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("starting DHT: %w", err)
	}
	return d, nil
}

func multiaddrOf(s string) (ma.Multiaddr, error) { return ma.NewMultiaddr(s) }
