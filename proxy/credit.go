package proxy

import (
	"net/http"
	"slices"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
)

// credit is what client may owe this proxy. A proxy paid by channels serves
// a client only against an open channel whose deposit, less what its
// vouchers already cover, pays for its unpaid answers: the allowance is
// min(CreditLimit, that deposit). A proxy without channels serves only the
// client keys it was told to serve (Config.Clients), each up to CreditLimit.
func (p *Proxy) credit(client string) (*accounts.Credit, *api.Error) {
	if p.money != nil {
		if err := p.checkChannelOpen(client); err != nil {
			return nil, api.Errorf(http.StatusPaymentRequired, api.TypeInsufficient, "channel_closing", "%v", err)
		}
		if open, _ := p.money.collect.ChannelsOf(client); open == 0 {
			return nil, api.Errorf(http.StatusPaymentRequired, api.TypeInsufficient, "no_channel",
				"no open payment channel of yours pays this proxy: open one and send its first voucher")
		}
		paid, available := p.money.collect.Covered(client)
		return &accounts.Credit{Allowance: min(p.cfg.CreditLimit, available), Paid: paid}, nil
	}
	if !slices.Contains(p.cfg.Clients, client) {
		return nil, api.Errorf(http.StatusForbidden, api.TypeInvalidRequest, "client_not_allowed",
			"this proxy takes no payments and does not serve client %.16s…", client)
	}
	return &accounts.Credit{Allowance: p.cfg.CreditLimit, Paid: p.paidBy(client)}, nil
}
