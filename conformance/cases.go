package conformance

import "slices"

// AllCases is every case of the suite, area by area.
func AllCases() []Case {
	return slices.Concat(
		exchangeCases(),
		aliveCases(),
		offerCases(),
		frameCases(),
		stepCases(),
		execCases(),
		capsCases(),
		receiptCases(),
		localCases(),
		apiCases(),
		apiHardeningCases(),
		clientCases(),
		apiClientCases(),
	)
}
